"""armscan: open detection of firearms, parts, ammunition and printed or polymer weapon parts in X-ray scans.

Subpackages: ``armscan.datasets`` (taxonomy, readers, synthetic scans), ``armscan.models``
(the networks), ``armscan.training`` (learning, evaluation, export), ``armscan.inference``
(torch-free screening) and ``armscan.serve`` (command line and service).
"""

__version__ = "0.1.0"
