"""The settings of a training run: one pydantic model, the single place a setting is written.

Each field's description is its ``gaitsearch train --help`` text (the CLI builds its options
from these fields) and the checkpoint records the whole model under ``training``. A field
that only matters in some configurations says so in ``applies_when`` (e.g. the InfoNCE
temperature: text space and InfoNCE loss); setting it anywhere else is refused rather than
silently ignored. Fields marked ``run`` say where and how this run happens (paths, resume)
and are not part of a recipe (:mod:`gaitsearch.model.train_recipe`).

No torch import here: the CLI reads this module to build ``--help``.
"""

from __future__ import annotations

from typing import Any

from pydantic import BaseModel, Field, field_validator, model_validator


def _only(**conditions: tuple[str, ...]) -> dict[str, Any]:
    return {"applies_when": {k: list(v) for k, v in conditions.items()}}


RUN: dict[str, Any] = {"run": True}
TEXT = _only(space=("text",))
ATTRIBUTES = _only(space=("attributes",))


class TrainConfig(BaseModel):
    """Every knob of a training run (recorded in the checkpoint's ``training``)."""

    data: str = Field(description="Training gallery directory.", json_schema_extra=RUN)
    out: str = Field(
        description="Checkpoint directory to write (the best model is kept there).",
        json_schema_extra=RUN,
    )
    preset: str = Field(
        default="small",
        description="Motion encoder preset: mini (shipped checkpoint), small, tiny, paper.",
    )
    loss: str = Field(
        default="infonce",
        description="infonce, triplet (the paper's) or mse.",
        json_schema_extra=TEXT,
    )
    epochs: float | None = Field(default=None, description="Passes over the training set.")
    minutes: float | None = Field(
        default=None,
        description="Wall-clock budget; training stops at whichever limit comes first.",
    )
    batch_size: int = Field(default=128, ge=2, description="Sequences per step.")
    lr: float = Field(default=1e-3, gt=0, description="Peak learning rate (AdamW).")
    weight_decay: float = Field(default=0.05, ge=0, description="AdamW weight decay.")
    warmup_steps: int = Field(
        default=200, ge=0, description="Linear warm-up steps before cosine decay."
    )
    seed: int = Field(default=0, description="Random seed (split, batches, augmentation, init).")
    device: str = Field(default="cpu", description="cpu or cuda (cuda when a GPU is there).")
    threads: int | None = Field(default=None, description="CPU threads for torch.")
    flip_p: float = Field(
        default=0.5, ge=0, le=1, description="Probability of a left/right flip per sequence."
    )
    dropout_p: float = Field(
        default=0.05, ge=0, le=1, description="Probability of dropping each joint (augmentation)."
    )
    widths_p: float = Field(
        default=0.0,
        ge=0,
        le=1,
        description="Probability of scaling a sequence's hip and shoulder widths (augmentation).",
    )
    temperature: float = Field(
        default=0.07,
        gt=0,
        description="InfoNCE temperature.",
        json_schema_extra=_only(space=("text",), loss=("infonce",)),
    )
    fn_threshold: float = Field(
        default=0.95,
        gt=0,
        le=1,
        description="InfoNCE: text similarity above which a pair is not used as a negative.",
        json_schema_extra=_only(space=("text",), loss=("infonce",)),
    )
    margin: float = Field(
        default=10.0,
        description="Triplet loss margin (the paper's: 10).",
        json_schema_extra=_only(space=("text",), loss=("triplet",)),
    )
    descriptions_per_step: int = Field(
        default=1,
        ge=1,
        description="Descriptions sampled per sequence each step; their mean is the target.",
        json_schema_extra=TEXT,
    )
    captions: str = Field(
        default="attributes",
        pattern="^(attributes|descriptions)$",
        description="attributes: query-like captions tagged with the attributes they name, "
        "every walker a caption fits is a positive (multi-positive InfoNCE); descriptions: "
        "each sequence's own descriptions, one positive (the paper's setting; the triplet "
        "and mse losses always use these).",
        json_schema_extra=_only(space=("text",), loss=("infonce",)),
    )
    captions_per_sequence: int = Field(
        default=8,
        ge=1,
        description="Attribute-tagged captions generated (and embedded once) per sequence.",
    )
    head: str = Field(
        default="attributes",
        pattern="^(attributes|projection)$",
        description="attributes: the attribute bottleneck (per-group softmax, then a map into "
        "the text space; needs attributes in the gallery); projection: an MLP straight into "
        "the text space (the paper's).",
        json_schema_extra=TEXT,
    )
    attribute_weight: float = Field(
        default=1.0,
        ge=0,
        description="Weight of the per-group attribute cross-entropy (0: off).",
        json_schema_extra=TEXT,
    )
    space: str = Field(
        default="attributes",
        pattern="^(text|attributes)$",
        description="Search space. attributes (ours): walks become attribute log-likelihood "
        "ratios, queries go through a query head fitted on the training captions; the encoder "
        "trains on recognition only (needs attributes in the gallery). text: walks land in "
        "the frozen text space (the paper's; --head, --loss, --captions apply).",
    )
    query_temperature: float | None = Field(
        default=None,
        gt=0,
        description="Softmax temperature of the query head. Default: chosen on the "
        "validation queries (--val-data) among 0.1, 0.25, 0.5, 1; 0.25 without.",
        json_schema_extra=ATTRIBUTES,
    )
    measured_weight: float = Field(
        default=1.0,
        ge=0,
        description="Weight of the measured groups (speed, stride, arm swing, lean, head "
        "pitch, foot clearance, bounce, sway, evenness computed from the keypoints, "
        "gaitsearch.model.measured) beside the recognised attributes; 0: none.",
        json_schema_extra=ATTRIBUTES,
    )
    query_head_steps: int = Field(
        default=3000,
        ge=1,
        description="Steps fitting the query head on the training captions.",
        json_schema_extra=ATTRIBUTES,
    )
    n_frames: int = Field(default=32, description="Frames per training window.")
    target_fps: float = Field(default=12.5, description="Frame rate windows are resampled to.")
    centre: str = Field(
        default="pelvis",
        pattern="^(pelvis|first_joint)$",
        description="pelvis, or first_joint (the paper).",
    )
    scale_normalise: bool = Field(
        default=True, description="Divide by body height (--no-scale-normalise: the paper)."
    )
    val_data: str | None = Field(
        default=None,
        description="Validation gallery with queries.jsonl (else a held-out slice).",
        json_schema_extra=RUN,
    )
    val_fraction: float = Field(
        default=0.05,
        ge=0,
        lt=1,
        description="Share of the training gallery held out when there is no --val-data.",
    )
    eval_every: int = Field(
        default=250, ge=1, description="Validate (and keep the best) every N steps."
    )
    work_dir: str | None = Field(
        default=None,
        description="Resumable training state (default under ~/.cache/gaitsearch/runs).",
        json_schema_extra=RUN,
    )
    resume: bool = Field(
        default=False, description="Continue from the work dir.", json_schema_extra=RUN
    )
    progress: bool = Field(default=True, description="Show a progress bar.", json_schema_extra=RUN)

    @field_validator("loss")
    @classmethod
    def _known_loss(cls, value: str) -> str:
        from gaitsearch.model.losses import LOSSES  # torch: only when a config is built

        if value not in LOSSES:
            raise ValueError(f"unknown loss {value!r}; choose from {', '.join(LOSSES)}")
        return value

    @model_validator(mode="after")
    def _every_setting_does_something(self) -> TrainConfig:
        given = {name: getattr(self, name) for name in self.model_fields_set}
        problems = idle_settings(given)
        if problems:
            raise ValueError("; ".join(problems))
        return self


def field_extra(name: str) -> dict[str, Any]:
    extra = TrainConfig.model_fields[name].json_schema_extra
    return extra if isinstance(extra, dict) else {}


def flag(name: str) -> str:
    return "--" + name.replace("_", "-")


def idle_settings(given: dict[str, Any]) -> list[str]:
    """One line per setting in ``given`` that would do nothing next to the others (the
    rest at their defaults)."""
    values = {n: f.default for n, f in TrainConfig.model_fields.items()} | given
    problems = []
    for name in given:
        when = field_extra(name).get("applies_when", {})
        unmet = {k: v for k, v in when.items() if values[k] not in v}
        if unmet:
            now = ", ".join(f"{flag(k)} {values[k]}" for k in unmet)
            need = " and ".join(f"{flag(k)} {'|'.join(v)}" for k, v in when.items())
            problems.append(f"{flag(name)} does nothing with {now} (it applies with {need})")
    return problems
