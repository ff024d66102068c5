"""Champion and candidate: a new model replaces the one `latest` serves only if it is not worse on the same images.

Both models classify the candidate's test set through onnxruntime. "Worse" means a lower accuracy by more than
the user's tolerance, and a difference that McNemar's exact test finds significant on the paired predictions
(p < 0.05): a handful of images that flip between two equally good models does not decide a release.
"""

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np

from sgan.evaluation.paired import SIGNIFICANCE, mcnemar_p, said


@dataclass(frozen=True)
class Comparison:
    champion: str  # its version, e.g. v0003
    images: int
    candidate_accuracy: float
    champion_accuracy: float
    candidate_only: int  # images the candidate gets right and the champion wrong
    champion_only: int
    p_value: float  # McNemar's exact test on the two counts above
    tolerance: float

    @property
    def worse(self) -> bool:
        return self.candidate_accuracy < self.champion_accuracy - self.tolerance and self.p_value < SIGNIFICANCE

    def summary(self) -> str:
        verdict = "worse" if self.worse else "not worse"
        return (f"{verdict} than {self.champion} on the same {self.images} test images: {self.candidate_accuracy:.2%} "
                f"vs {self.champion_accuracy:.2%} ({self.candidate_only} right only here, {self.champion_only} only "
                f"there; McNemar {said(self.p_value)}, tolerance {self.tolerance:.2%})")

    def to_dict(self) -> dict:
        return {**asdict(self), "worse": self.worse}


def compare(candidate: Path, champion_dir: Path, images: np.ndarray, labels: np.ndarray,
            tolerance: float) -> Comparison:
    from deploy.runtime import Classifier

    right = [Classifier(path).predict(images).classes == labels for path in (candidate, champion_dir / "model.onnx")]
    b, c = int(np.sum(right[0] & ~right[1])), int(np.sum(right[1] & ~right[0]))
    return Comparison(champion_dir.name, len(labels), float(right[0].mean()), float(right[1].mean()), b, c,
                      mcnemar_p(b, c), tolerance)
