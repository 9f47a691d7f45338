"""Quality control of GGT pairs: metric gates, a VLM judge, and a manual review page.

Example:
    >>> from ggt_datasets.qc import load_config, run_qc  # doctest: +SKIP
    >>> results, notes = run_qc("RAW", stages=("metric",), config=load_config())  # doctest: +SKIP
"""

from ggt_datasets.qc.config import FLAGS, QCConfig, VLMThresholds, load_config
from ggt_datasets.qc.gates import GATE_NAMES, GATES, Gate, metric_scores
from ggt_datasets.qc.judge import JudgeCache, judge_pair, load_criteria
from ggt_datasets.qc.pipeline import QC_FILE, QCItem, load_items, merge_parts, run_qc, write_part, write_results
from ggt_datasets.qc.report import make_report, render_html

__all__ = [
    "FLAGS",
    "GATES",
    "GATE_NAMES",
    "QC_FILE",
    "Gate",
    "JudgeCache",
    "QCConfig",
    "QCItem",
    "VLMThresholds",
    "judge_pair",
    "load_config",
    "load_criteria",
    "load_items",
    "make_report",
    "merge_parts",
    "metric_scores",
    "render_html",
    "run_qc",
    "write_part",
    "write_results",
]
