import pytest

torch = pytest.importorskip("torch")

from armscan.models import UnknownModelError, get_model, list_models  # noqa: E402
from armscan.models.registry import register_model  # noqa: E402


def test_unknown_model_error_lists_the_registered_ones():
    with pytest.raises(UnknownModelError, match="armscan_det_small"):
        get_model("yolo_v99")


def test_duplicate_registration_is_refused():
    list_models()

    def armscan_det_small():
        raise AssertionError("never built")

    with pytest.raises(ValueError, match="already registered"):
        register_model(armscan_det_small)


@pytest.mark.parametrize("name", list_models())
def test_every_registered_model_runs_a_tiny_input(name):
    model = get_model(name, num_classes=8).eval()
    with torch.no_grad():
        outs = model(torch.randn(2, 3, 96, 96))
    shapes = [tuple(o.shape) for o in outs]
    if name.startswith("armscan_photo"):  # family, build, the four stride-4 masks
        assert shapes == [(2, 8), (2, 3), (2, 4, 24, 24)]
    else:  # class, box, centreness, build, type maps at stride 8
        assert shapes == [(2, 8, 12, 12), (2, 4, 12, 12), (2, 1, 12, 12), (2, 3, 12, 12), (2, 5, 12, 12)]
    assert all(torch.isfinite(o).all() for o in outs)


def test_bad_backbone_is_a_clear_error():
    from armscan.models.detector import ArmscanDet

    with pytest.raises(ValueError, match="Only mobilenet_v3_small, mobilenet_v3_large"):
        ArmscanDet(backbone="resnet9000")
