"""Measured groups: what the skeleton shows, in the search space beside learned recognition.

A *measured group* bins one gait descriptor of :mod:`gaitsearch.model.descriptors` (ground
speed in body heights per second, relative stride length, arm swing, trunk lean, head pitch,
foot clearance, vertical bounce, lateral sway, step asymmetry), computed from the keypoints
alone, into a few ordered values ("slow" < "moderate" < "fast" < "running"). Nothing about
them is learned: the bin edges are physical quantities recorded in the checkpoint config.

- **Walks.** Each walk gets, per measured group, the log-likelihood ratio of each value
  ``log p(value | measured x) - log(1 / K)``, where ``p`` is an ordered logistic around the
  edges (its width is the descriptor's measurement noise) with a floor, times the group
  ``weight``; a descriptor the view cannot measure (NaN) gives zeros: no evidence either way.
- **Queries.** A query names a measured value through the learned vocabulary it was read as:
  a :data:`LINKS` table maps attribute values onto measured values (pace "slow" → speed
  "slow", step "long_strides" → stride "long", posture "head_down" → head pitch "down" ...),
  so the query head's probability of the attribute value becomes the query's weight on the
  measured value. "Very slow" is then answered both by what the encoder recognises and by the
  speed measured on the recording, which also holds on recordings unlike the synthetic ones.
- **Understanding.** Each linked term adds a measured term (``kind: "measured"``).

The vectors sit after the attribute groups in the same index row, so the index, the
pipeline and the service need nothing new: a query scores ``sum(q * llr)`` over both parts.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

# Probability floor of a measured value: descriptors are noisy and the view can mislead, so a
# walk is never ruled out by a measurement alone.
FLOOR = 0.03


@dataclass(frozen=True)
class MeasuredGroup:
    """One descriptor binned into ordered values (``edges`` in the descriptor's unit)."""

    name: str
    descriptor: str
    values: tuple[str, ...]
    edges: tuple[float, ...]
    width: float  # logistic width of each edge, in the descriptor's unit
    weight: float = 1.0

    def probabilities(self, x: np.ndarray) -> np.ndarray:
        """``(n, K)`` ordered-logistic value probabilities; NaN rows stay NaN."""
        x = np.asarray(x, dtype=np.float64)[:, None]
        edges = np.asarray(self.edges, dtype=np.float64)[None, :]
        above = 1.0 / (1.0 + np.exp(-np.clip((x - edges) / self.width, -50, 50)))
        ones = np.ones((x.shape[0], 1))
        zeros = np.zeros((x.shape[0], 1))
        cumulative = np.concatenate([ones, above, zeros], axis=1)
        p = cumulative[:, :-1] - cumulative[:, 1:]
        return np.asarray(np.maximum(p, 0.0))

    def log_ratios(self, x: np.ndarray) -> np.ndarray:
        """``(n, K)`` weighted log-likelihood ratios against a uniform prior; 0 where NaN."""
        p = self.probabilities(x)
        k = len(self.values)
        p = FLOOR / k + (1.0 - FLOOR) * p
        out = self.weight * (np.log(p) + np.log(k))
        out[~np.isfinite(out)] = 0.0
        return np.asarray(out, dtype=np.float32)

    def to_dict(self) -> dict[str, Any]:
        return {
            "descriptor": self.descriptor,
            "values": list(self.values),
            "edges": [float(e) for e in self.edges],
            "width": float(self.width),
            "weight": float(self.weight),
        }


# The default groups. Edges sit between the medians that the linked attribute values give
# on 2,000 synthetic walkers (speed: slow 0.42, normal 0.66, brisk 0.94, running 1.94 body
# heights/s, and normal walking at 1.2-1.4 m/s is about 0.75; stride: shuffling 0.40, short
# steps 0.48, normal 0.70, long strides 0.89; head pitch: proud -9, normal 5, head down 28,
# sad 33 deg; foot clearance: shuffling 0.018, normal 0.07, marching 0.15); widths are
# about the spread within one value. They are physical quantities, not fitted weights.
DEFAULT_GROUPS: tuple[MeasuredGroup, ...] = (
    MeasuredGroup("speed", "speed", ("slow", "moderate", "fast", "running"),
                  (0.54, 0.80, 1.4), 0.06),
    MeasuredGroup("stride", "stride", ("short", "medium", "long"), (0.55, 0.85), 0.05),
    MeasuredGroup("arm_swing_size", "arm_swing", ("small", "medium", "wide"),
                  (0.035, 0.12), 0.012),
    MeasuredGroup("trunk_lean", "trunk_lean", ("upright", "slight", "forward"),
                  (4.5, 15.0), 3.0),
    MeasuredGroup("head_pitch", "head_pitch", ("up", "level", "down"), (-2.0, 16.0), 4.0),
    MeasuredGroup("foot_clearance", "foot_clearance", ("low", "medium", "high"),
                  (0.035, 0.11), 0.01),
    MeasuredGroup("bounce", "bounce", ("flat", "medium", "bouncy"), (0.011, 0.024), 0.003),
    MeasuredGroup("sway", "sway", ("small", "medium", "large"), (0.022, 0.05), 0.006),
    MeasuredGroup("step_evenness", "step_asymmetry", ("even", "uneven"), (0.15,), 0.04),
)  # fmt: skip

# (attribute group, value) → [(measured group, value)]: what naming the attribute value
# says about a measurable quantity. Only links that hold for walkers in general.
LINKS: dict[tuple[str, str], tuple[tuple[str, str], ...]] = {
    ("pace", "slow"): (("speed", "slow"),),
    ("pace", "normal"): (("speed", "moderate"),),
    ("pace", "brisk"): (("speed", "fast"),),
    ("pace", "running"): (("speed", "running"),),
    ("step", "long_strides"): (("stride", "long"),),
    ("step", "short_steps"): (("stride", "short"),),
    ("step", "shuffling"): (("foot_clearance", "low"), ("stride", "short")),
    ("step", "bouncy"): (("bounce", "bouncy"),),
    ("arm_swing", "wide"): (("arm_swing_size", "wide"),),
    ("arm_swing", "stiff"): (("arm_swing_size", "small"),),
    ("arm_swing", "none"): (("arm_swing_size", "small"),),
    ("posture", "hunched"): (("trunk_lean", "forward"),),
    ("posture", "upright"): (("trunk_lean", "upright"),),
    ("posture", "head_down"): (("head_pitch", "down"),),
    ("style", "hip_sway"): (("sway", "large"),),
    ("style", "marching"): (("foot_clearance", "high"),),
    ("style", "sneaking"): (("speed", "slow"),),
    ("emotion", "sad"): (("head_pitch", "down"),),
    ("emotion", "proud"): (("head_pitch", "up"),),
    ("impairment", "limp"): (("step_evenness", "uneven"),),
}


class MeasuredSpace:
    """The measured groups of one checkpoint: walk vectors, query vectors, terms."""

    def __init__(
        self,
        groups: Sequence[MeasuredGroup],
        vocabulary: Mapping[str, Sequence[str]],
        links: Mapping[tuple[str, str], Sequence[tuple[str, str]]] | None = None,
    ) -> None:
        self.groups = list(groups)
        self.vocabulary = {g: list(v) for g, v in vocabulary.items()}
        self.sizes = [len(g.values) for g in self.groups]
        self.dim = sum(self.sizes)
        self.learned_dim = sum(len(v) for v in self.vocabulary.values())
        by_name = {g.name: i for i, g in enumerate(self.groups)}
        starts = np.cumsum([0, *self.sizes])
        learned_starts = np.cumsum([0, *(len(v) for v in self.vocabulary.values())])
        learned_index = {g: int(s) for g, s in zip(self.vocabulary, learned_starts, strict=False)}
        # (learned column, measured column) pairs, and what each learned value names.
        self.link_map = np.zeros((self.learned_dim, self.dim), dtype=np.float32)
        self.links: dict[tuple[str, str], list[tuple[str, str]]] = {}
        for (group, value), targets in (links if links is not None else LINKS).items():
            if group not in self.vocabulary or value not in self.vocabulary[group]:
                continue
            col = learned_index[group] + self.vocabulary[group].index(value)
            for target_group, target_value in targets:
                if target_group not in by_name:
                    continue
                m = self.groups[by_name[target_group]]
                if target_value not in m.values:
                    continue
                self.link_map[col, starts[by_name[target_group]] + m.values.index(target_value)] = 1
                self.links.setdefault((group, value), []).append((target_group, target_value))

    # -- config ----------------------------------------------------------------------------
    @classmethod
    def default_config(cls, weight: float = 1.0) -> dict[str, Any]:
        """What a new checkpoint records (``MotionEncoderConfig.measured``)."""
        return {
            "groups": {
                g.name: {**g.to_dict(), "weight": weight * g.weight} for g in DEFAULT_GROUPS
            },
            "links": [
                {"from": [g, v], "to": [list(t) for t in targets]}
                for (g, v), targets in LINKS.items()
            ],
        }

    @classmethod
    def from_config(
        cls, config: Mapping[str, Any], vocabulary: Mapping[str, Sequence[str]]
    ) -> MeasuredSpace:
        groups = [
            MeasuredGroup(
                name,
                str(spec["descriptor"]),
                tuple(spec["values"]),
                tuple(float(e) for e in spec["edges"]),
                float(spec["width"]),
                float(spec.get("weight", 1.0)),
            )
            for name, spec in config.get("groups", {}).items()
        ]
        links = {
            (str(item["from"][0]), str(item["from"][1])): [(str(a), str(b)) for a, b in item["to"]]
            for item in config.get("links", [])
        }
        return cls(groups, vocabulary, links)

    # -- walks -----------------------------------------------------------------------------
    def walk_vectors(self, descriptors: np.ndarray) -> np.ndarray:
        """``(n, dim)`` from ``(n, len(DESCRIPTORS))`` measured descriptors."""
        from gaitsearch.model.descriptors import DESCRIPTORS

        descriptors = np.asarray(descriptors, dtype=np.float64)
        columns = {name: i for i, name in enumerate(DESCRIPTORS)}
        parts = []
        for g in self.groups:
            if g.descriptor not in columns:
                parts.append(np.zeros((len(descriptors), len(g.values)), dtype=np.float32))
            else:
                parts.append(g.log_ratios(descriptors[:, columns[g.descriptor]]))
        return np.concatenate(parts, axis=1) if parts else np.zeros((len(descriptors), 0))

    def measure(self, sequences: Sequence[np.ndarray], fps: Sequence[float]) -> np.ndarray:
        """The measured part of the gallery vectors of raw OpenPose-18 sequences."""
        from gaitsearch.model.descriptors import measure_many

        return self.walk_vectors(measure_many(sequences, list(fps)))

    # -- queries ---------------------------------------------------------------------------
    def query_part(self, named: np.ndarray) -> np.ndarray:
        """``(n, dim)`` from the query head's named-value probabilities ``(n, learned_dim)``:
        per measured value, the strongest attribute value that names it."""
        named = np.asarray(named, dtype=np.float32)
        out = np.zeros((len(named), self.dim), dtype=np.float32)
        cols, rows = np.nonzero(self.link_map.T)  # links sorted by measured column
        if len(cols) and len(named):  # one reduceat over every link (a loop cost ~0.1 ms)
            first = np.flatnonzero(np.r_[True, cols[1:] != cols[:-1]])
            linked = np.maximum.reduceat(named[:, rows], first, axis=1)
            out[:, cols[first]] = np.maximum(linked, 0.0)
        return out

    def terms(
        self, attribute_terms: Sequence[tuple[str, str, float]]
    ) -> list[tuple[str, str, float]]:
        """Measured terms ``(group, value, confidence)`` named by attribute terms."""
        best: dict[tuple[str, str], float] = {}
        for group, value, confidence in attribute_terms:
            for target in self.links.get((group, value), []):
                best[target] = max(best.get(target, 0.0), confidence)
        return [(g, v, c) for (g, v), c in best.items()]

    def describe(self) -> list[str]:
        """One "group (values)" line per measured group, for "what can be searched"."""
        return [f"{g.name} ({', '.join(g.values)})" for g in self.groups]
