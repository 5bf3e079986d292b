import pytest

from armscan.datasets.taxonomy import (
    CLASSES,
    FLAG_RULES,
    TaxonomyError,
    class_index,
    map_external_label,
    validate_attributes,
)


def test_external_labels_map_to_our_classes():
    assert map_external_label("Handgun") == ("firearm", "pistol")
    assert map_external_label("bullet") == ("ammunition", "unknown")
    assert map_external_label("lower receiver") == ("frame_receiver", "unknown")
    assert map_external_label("hair dryer") is None


def test_unknown_names_are_errors_that_list_the_valid_ones():
    with pytest.raises(TaxonomyError, match="Valid classes: firearm"):
        class_index("knife")
    with pytest.raises(TaxonomyError, match="only allowed on 'firearm'"):
        validate_attributes("barrel", "rifle", "metal")
    with pytest.raises(TaxonomyError, match="Unknown build"):
        validate_attributes("firearm", "pistol", "wooden")


def test_flag_rules_cover_every_class():
    covered = {c for rule in FLAG_RULES.values() for c in rule.get("classes", [])}
    assert covered == set(CLASSES)
