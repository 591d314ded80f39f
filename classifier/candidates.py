"""The candidate report: a ready version against the active one of its dataset, before it is
activated, on the test split and on the field set (real photos whose true label is known), photo
by photo: the photos it would fix and the ones it would break. Read from stored answers only."""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np

from classifier.ml.metrics import decide
from classifier.models import FieldAnswer, ModelVersion
from classifier.reports import difference_text, test_answers
from classifier.selectors import active_version, images_by_sha256
from classifier.selectors_review import field_photos


@dataclass
class SetComparison:
    """Both versions on the photos they both answered in one set (neither trained on them)."""

    name: str
    photos: int = 0
    note: str = ""  # why there is nothing to compare, when photos is 0
    candidate: float | None = None  # accuracy on those photos
    active: float | None = None
    fixed: list[dict] = field(default_factory=list)  # right now, wrong before
    broken: list[dict] = field(default_factory=list)  # wrong now, right before

    @property
    def worse(self) -> bool:
        return self.photos > 0 and self.candidate < self.active

    @property
    def difference(self) -> str:
        return difference_text(self.active, self.candidate, "percentage") if self.photos else "–"


@dataclass
class CandidateReport:
    candidate: ModelVersion
    active: ModelVersion
    sets: list[SetComparison]

    @property
    def worse_on(self) -> list[str]:
        """The sets on which the candidate is right less often than the active version."""
        return [comparison.name for comparison in self.sets if comparison.worse]

    def worse_sentence(self) -> str:
        parts = [f"{c.name} {c.candidate:.1%} against {c.active:.1%} on {c.photos} photos"
                 for c in self.sets if c.worse]
        return f"{self.candidate} is right less often than the active {self.active}: " + "; ".join(parts) + "."


def candidate_report(*, version: ModelVersion) -> CandidateReport | None:
    """The report of a ready version that is not the active one; None when there is nothing to
    compare it with."""
    active = active_version(dataset=version.dataset)
    if active is None or active.pk == version.pk or version.status != ModelVersion.Status.READY:
        return None
    return CandidateReport(candidate=version, active=active,
                           sets=[test_comparison(version, active), field_comparison(version, active)])


def compared(name: str, keys: list, truth: list[str], answers: tuple[list[str], list[str]]) -> SetComparison:
    """Accuracy of (candidate, active) answers against the truth, and the keys each fixes or breaks."""
    candidate, active = (np.array(a) == np.array(truth) for a in answers)
    if not keys:
        return SetComparison(name=name, note="no photo answered by both versions yet")
    return SetComparison(
        name=name, photos=len(keys), candidate=float(candidate.mean()), active=float(active.mean()),
        fixed=[{"key": k, "label": t, "before": b} for k, t, b, c, a in
               zip(keys, truth, answers[1], candidate, active) if c and not a],
        broken=[{"key": k, "label": t, "now": n} for k, t, n, c, a in
                zip(keys, truth, answers[0], candidate, active) if a and not c],
    )


def test_comparison(candidate: ModelVersion, active: ModelVersion) -> SetComparison:
    """On the test photos both versions were evaluated on (splits follow the photos' content, so a
    photo in both test splits was trained on by neither)."""
    answers = [test_answers(version=version) for version in (candidate, active)]
    if any(answer is None for answer in answers):
        return SetComparison(name="test split", note="not available: a version trained before per-photo scores were stored")
    shared = sorted(set(answers[0]) & set(answers[1]))
    comparison = compared("test split", shared, [answers[0][k][0] for k in shared],
                          ([answers[0][k][1] for k in shared], [answers[1][k][1] for k in shared]))
    images = images_by_sha256(dataset=candidate.dataset, keys=shared)
    for item in comparison.fixed + comparison.broken:
        item["image"] = images.get(item["key"])
    return comparison


def field_comparison(candidate: ModelVersion, active: ModelVersion) -> SetComparison:
    """On the field photos both versions answered without having trained on them, whose true
    label both know; a photo sent more than once is compared once, as its newest upload (as the
    field score counts it)."""
    photos = field_photos(dataset=candidate.dataset)
    truth = {photo.job_id: photo.label for photo in photos}
    answers: dict[int, dict[str, str]] = {}
    bytes_of: dict[str, str] = {}
    for version in (candidate, active):
        rows = FieldAnswer.objects.filter(version=version, seen_in_training=False, job_id__in=list(truth))
        answers[version.pk] = {}
        for job_id, sha256, probabilities in rows.values_list("job_id", "sha256", "probabilities"):
            label = version.labels[int(decide(np.array([probabilities]), version.threshold)[0])]
            answers[version.pk][str(job_id)], bytes_of[str(job_id)] = label, sha256
    both = set(answers[candidate.pk]) & set(answers[active.pk])
    # the photos run oldest first, so each photo's bytes end up with their newest upload both answered
    newest = {bytes_of[photo.job_id]: photo.job_id for photo in photos if photo.job_id in both}
    shared = sorted(
        job_id for job_id in newest.values() if truth[job_id] in candidate.labels and truth[job_id] in active.labels
    )
    comparison = compared("field set", shared, [truth[k] for k in shared],
                          ([answers[candidate.pk][k] for k in shared], [answers[active.pk][k] for k in shared]))
    for item in comparison.fixed + comparison.broken:
        item["job_id"] = item["key"]
    return comparison
