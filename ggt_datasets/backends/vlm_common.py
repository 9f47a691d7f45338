"""What every VLM backend asks and the JSON shapes it expects back (pydantic schemas).

The Gemini and OpenAI VLMs send the same instructions and parse the same schemas; only the wire
format differs. Schemas avoid free-form maps (Gemini's response_schema does not take them).
"""

from __future__ import annotations

from pydantic import BaseModel, Field, ValidationError

from ggt_datasets.backends.base import (
    JUDGE_FLAGS,
    DegradationReport,
    JudgeResult,
    QualityRating,
    TransientBackendError,
)


class DegradationItem(BaseModel):
    name: str = Field(description="a degradation, e.g. 'rain streaks', 'jpeg blocking', 'haze'")
    severity: float = Field(description="0 (barely visible) to 1 (dominant)")


class DescribeAnswer(BaseModel):
    degradations: list[DegradationItem]
    scene: str = Field(description="one sentence on the content that must be kept")
    notes: str = ""


class PromptAnswer(BaseModel):
    prompt: str = Field(description="the restoration instruction for an image-editing model")


class JudgeAnswer(BaseModel):
    degradation_removal: float = Field(description="D, 0-100: how fully the degradations are gone")
    fidelity: float = Field(description="F, 0-100: how faithfully content, identity, text are kept")
    flags: list[str] = Field(description="violations, any of: " + ", ".join(JUDGE_FLAGS))
    rationale: str = ""


class RateAnswer(BaseModel):
    quality: float = Field(description="perceptual quality, 0-100")
    fidelity: float | None = Field(default=None, description="fidelity to the LQ, 0-100, if given")
    rationale: str = ""


DESCRIBE_INSTRUCTION = (
    "You are an image-restoration expert. List every degradation visible in this photo "
    "(noise, blur, JPEG artefacts, rain, haze, snow, low light, scratches, fading, colour cast, ...) "
    "with a severity from 0 to 1, and describe in one sentence the content that must be kept. "
    "Answer in JSON."
)
PROMPT_INSTRUCTION = (
    "Write one instruction for an image-editing model that restores this photo faithfully. "
    "Remove only these degradations: {degradations}. Keep the content, identity, text, layout, "
    "geometry and colours exactly; add nothing. Scene: {scene}. Answer in JSON with key 'prompt'."
)
JUDGE_INSTRUCTION = (
    "The first image is a degraded photo (LQ), the second its restoration (HQ). Score, from 0 to "
    "100, degradation removal D (how fully the degradations are gone) and content fidelity F (how "
    "faithfully content, identity, text, layout and colours are kept), and flag violations "
    "(" + ", ".join(JUDGE_FLAGS) + "). "
    "Criteria: {criteria}. Answer in JSON."
)
RATE_INSTRUCTION = (
    "Rate the perceptual quality of this photo from 0 (unusable) to 100 (flawless: sharp, clean, "
    "natural). Answer in JSON."
)
RATE_WITH_LQ_INSTRUCTION = (
    "The first image is a degraded photo (LQ), the second a restoration of it. Rate the perceptual "
    "quality of the second from 0 to 100, and its fidelity to the first from 0 to 100. Answer in JSON."
)


def parse_answer(schema: type[BaseModel], text: str | None, what: str) -> BaseModel:
    """Validate a JSON answer; a missing or malformed one is a transient fault of that response."""
    if not text:
        raise TransientBackendError(f"{what}: empty answer where JSON was expected")
    try:
        return schema.model_validate_json(text)
    except ValidationError as err:
        first = err.errors()[0] if err.errors() else {}
        raise TransientBackendError(
            f"{what}: answer does not match {schema.__name__} ({first.get('msg', 'invalid JSON')})"
        ) from None


def _clip100(v: float | None) -> float | None:
    return None if v is None else float(min(max(v, 0.0), 100.0))


def to_report(ans: DescribeAnswer) -> DegradationReport:
    return DegradationReport(
        degradations=[d.name for d in ans.degradations],
        severity={d.name: float(min(max(d.severity, 0.0), 1.0)) for d in ans.degradations},
        scene=ans.scene,
        notes=ans.notes,
    )


def to_judge(ans: JudgeAnswer) -> JudgeResult:
    return JudgeResult(
        degradation_removal=_clip100(ans.degradation_removal),
        fidelity=_clip100(ans.fidelity),
        flags=list(ans.flags),
        rationale=ans.rationale,
    )


def to_rating(ans: RateAnswer) -> QualityRating:
    return QualityRating(quality=_clip100(ans.quality), fidelity=_clip100(ans.fidelity), rationale=ans.rationale)


def prompt_request(report: DegradationReport) -> str:
    degs = ", ".join(report.degradations) or "any visible degradation"
    return PROMPT_INSTRUCTION.format(degradations=degs, scene=report.scene or "as shown")


def clean_prompt(ans: PromptAnswer, what: str) -> str:
    prompt = ans.prompt.strip()
    if not prompt:
        raise TransientBackendError(f"{what}: the VLM wrote an empty prompt")
    return prompt
