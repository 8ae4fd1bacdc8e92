"""Operators that bring the input into the graph: a NIfTI path, and a series selector that fails loudly."""

from __future__ import annotations

import json
import logging
from pathlib import Path

from monai.deploy.core import Fragment, Operator, OperatorSpec
from monai.deploy.operators.dicom_series_selector_operator import DICOMSeriesSelectorOperator

__all__ = ["DEFAULT_SELECTION_RULES", "NiftiInputOperator", "MRSeriesSelectorOperator"]

#: Every MR series of the study matches; with ``sort_by_sop_instance_count`` the one with the most
#: slices comes first and is the one processed (localizers and single-slice series lose).
DEFAULT_SELECTION_RULES = json.dumps({"selections": [{"name": "HBP MR", "conditions": {"Modality": "(?i)^MR$"}}]})


class NiftiInputOperator(Operator):
    """Emits the path of a NIfTI file, once (the graph's source for NIfTI input).

    The file is read downstream by the NeoSeg config's own ``LoadScand``, so a NIfTI case goes
    through exactly what ``monai.bundle run`` does with it.

    Named output:
        image: ``pathlib.Path`` of the NIfTI file.
    """

    def __init__(self, fragment: Fragment, *args, path: Path, **kwargs) -> None:
        self.path = Path(path)
        self.output_name = "image"
        super().__init__(fragment, *args, **kwargs)

    def setup(self, spec: OperatorSpec) -> None:
        spec.output(self.output_name)

    def compute(self, op_input, op_output, context) -> None:
        if not self.path.is_file():
            raise FileNotFoundError(f"Input {self.path} does not exist (any more).")
        op_output.emit(self.path, self.output_name)


class MRSeriesSelectorOperator(DICOMSeriesSelectorOperator):
    """The SDK's series selector, with MR rules by default and an error when nothing matches.

    The SDK's operator emits an empty list when no series matches, and the next operator then
    fails with "Missing expected input"; here the error names the input and lists the series found.

    Args:
        fragment: the application.
        input_path: the input folder, for messages.
        rules: selection rules in the SDK's JSON form (default: :data:`DEFAULT_SELECTION_RULES`).
    """

    def __init__(self, fragment: Fragment, *args, input_path: Path, rules: str = DEFAULT_SELECTION_RULES, **kwargs):
        self.input_path = Path(input_path)
        self._logger = logging.getLogger(f"{__name__}.{type(self).__name__}")
        super().__init__(fragment, *args, rules=rules, all_matched=True, sort_by_sop_instance_count=True, **kwargs)

    def filter(self, selection_rules, dicom_study_list, all_matched=False, sort_by_sop_instance_count=False):
        selected = super().filter(selection_rules, dicom_study_list, all_matched, sort_by_sop_instance_count)
        if not selected or not selected[0].selected_series:
            found = [
                f"{s.Modality or '?'} '{s.SeriesDescription or ''}' ({len(s.get_sop_instances())} instances)"
                for study in dicom_study_list or [] for s in study.get_all_series()
            ]
            raise ValueError(
                f"Input {self.input_path}: no DICOM series matches the selection rules {selection_rules}; "
                f"series found: {', '.join(found) if found else 'none'}."
            )
        if len(dicom_study_list) > 1 or len(selected[0].selected_series) > 1:
            chosen = selected[0].selected_series[0].series
            self._logger.warning(
                "Input %s holds several matching series; processing the largest, %s '%s' (%d instances)",
                self.input_path, chosen.SeriesInstanceUID, chosen.SeriesDescription, len(chosen.get_sop_instances()),
            )
        return selected
