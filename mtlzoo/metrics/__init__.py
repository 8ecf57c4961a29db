"""Streaming per-task meters, named evaluation protocols, delta_m and evaluate().

Typical use::

    result = evaluate(model, loader, protocol="mtan_nyuv2", baseline="auto")
    result["semseg"]["miou"], result.protocol, result.delta_m
    delta_m(result, "cagrad_segnet_nyuv2", style="nash", tasks="nyuv2_mtan")
    print(compare_with_reference(result, "nash_mtl_nyuv2").to_markdown())  # beside a published table

Two protocol families report different numbers under the same metric names (see each Protocol's
``description``); a result always carries the name of the protocol that made it.
"""

from mtlzoo.metrics.aggregate import average_results
from mtlzoo.metrics.base import Meter
from mtlzoo.metrics.baselines import BASELINES, Baseline, get_baseline, list_baselines
from mtlzoo.metrics.classification import AccuracyMeter, RegressionMeter
from mtlzoo.metrics.compare import Comparison, compare_with_reference
from mtlzoo.metrics.delta_m import DeltaBreakdown, delta_m, delta_m_breakdown, delta_m_terms
from mtlzoo.metrics.depth import DepthMeter
from mtlzoo.metrics.edge import EdgeMeter
from mtlzoo.metrics.evaluate import DataMismatchWarning, EvalResult, evaluate
from mtlzoo.metrics.keypoints import PCKMeter
from mtlzoo.metrics.multilabel import MultilabelMeter
from mtlzoo.metrics.normals import NormalsMeter, angular_error
from mtlzoo.metrics.protocols import PROTOCOLS, Protocol, create_meter, get_protocol, list_protocols
from mtlzoo.metrics.references import REFERENCES, ReferenceTable, get_reference, list_references
from mtlzoo.metrics.saliency import SaliencyMeter
from mtlzoo.metrics.segmentation import PartsMeter, SegmentationMeter

__all__ = [
    "AccuracyMeter", "BASELINES", "Baseline", "Comparison", "DataMismatchWarning", "DeltaBreakdown", "DepthMeter",
    "EdgeMeter", "EvalResult", "Meter", "MultilabelMeter", "NormalsMeter", "PCKMeter", "PROTOCOLS", "PartsMeter",
    "Protocol", "REFERENCES", "ReferenceTable", "RegressionMeter", "SaliencyMeter", "SegmentationMeter",
    "angular_error", "average_results", "compare_with_reference", "create_meter", "delta_m", "delta_m_breakdown",
    "delta_m_terms", "evaluate", "get_baseline", "get_protocol", "get_reference", "list_baselines", "list_protocols",
    "list_references",
]
