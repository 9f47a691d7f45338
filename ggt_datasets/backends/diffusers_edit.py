"""The `diffusers` generator: a local instruction-edit pipeline as a restorer, on your own GPU.

Any diffusers pipeline that takes `prompt` and `image` works; the ones meant here are
`QwenImageEditPipeline`, `FluxKontextPipeline` and `StableDiffusionInstructPix2PixPipeline`.
The pipeline class and its default model per class are in models.yaml; `model` may be a Hub id
or a local folder written by `save_pretrained`. Loading is lazy (first `restore`), and calls are
serialised: one pipeline, one GPU. A pipeline that cannot be loaded raises FatalBackendError
(the same one on every later call), so a run stops at once instead of failing every item.

Prompts are fitted to the pipeline's text encoder: a CLIP tokenizer reads 77 tokens and silently
drops the rest, which would cut the "keep everything, add nothing" clauses off the packaged
templates. A longer prompt is shortened (`fit_prompt`: the removal instruction, then the
faithfulness clauses first), a warning says so once, and the answer's usage records both
lengths and the prompt used. Where the pipeline also has a long-context encoder (`prompt_2`, as
Flux's T5), that one still gets the whole prompt.

Example:
    >>> from ggt_datasets.backends import make_generator
    >>> gen = make_generator("diffusers", pipeline="FluxKontextPipeline", num_inference_steps=28)  # doctest: +SKIP
    >>> gen.restore(lq_bytes, "Remove the haze; keep everything else.", {"category": "haze"}).size  # doctest: +SKIP
    (1024, 688)
"""

from __future__ import annotations

import inspect
import logging
import re
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

from ggt_datasets._optional import require
from ggt_datasets.backends import config as cfgmod
from ggt_datasets.backends.base import FINISH_OK, FatalBackendError, GenerationResult, TransientBackendError
from ggt_datasets.images import encode_png, open_image, to_rgb

log = logging.getLogger(__name__)
_SENTENCE = re.compile(r"(?<=[.!?])\s+")
_FAITHFUL = re.compile(r"\b(keep|do not|don't|add nothing|preserve|unchanged|same)\b", re.IGNORECASE)
_CORE = re.compile(r"\b(keep|add)\b", re.IGNORECASE)
SHORT_FAITHFUL = "Keep everything else; add nothing."


def _head(sentence: str) -> str:
    """A sentence cut at its first colon: 'Keep everything else exactly as it is: ...' -> '... is.'"""
    head = sentence.split(":", 1)[0].strip().rstrip(".")
    return head + "."


def fit_prompt(prompt: str, count: Callable[[str], int], limit: int) -> str:
    """`prompt` if `count(prompt) <= limit`, else a shorter one that keeps the faithfulness rules.

    The result is the removal instruction (the first sentence up to any colon) followed by as
    many faithfulness clauses (keep / do not / add nothing) as fit, or SHORT_FAITHFUL when none
    does; as a last resort the removal instruction loses words from its end.

    Example:
        >>> fit_prompt("Remove the rain: streaks. Keep all: x. Do not add.", lambda t: len(t.split()), 8)
        'Remove the rain. Keep all. Do not add.'
    """
    if count(prompt) <= limit:
        return prompt
    sentences = [s.strip() for s in _SENTENCE.split(" ".join(prompt.split())) if s.strip()]
    removal = _head(sentences[0]) if sentences else ""
    rest = list(enumerate(sentences[1:]))
    # "keep ..." and "do not add ..." first, then the other rules (do not crop, same size, ...).
    ranked = [p for p in rest if _CORE.search(p[1])] + [p for p in rest if not _CORE.search(p[1])]
    chosen: dict[int, str] = {}
    for i, sentence in ranked:
        if not _FAITHFUL.search(sentence):
            continue
        trial = {**chosen, i: _head(sentence)}
        if count(" ".join([removal, *(trial[k] for k in sorted(trial))])) <= limit:
            chosen = trial
    clauses = [chosen[k] for k in sorted(chosen)] or [SHORT_FAITHFUL]
    words = removal.rstrip(".").split()
    while words:
        text = " ".join([" ".join(words).rstrip(",;:") + ".", *clauses])
        if count(text) <= limit:
            return text
        words.pop()
    return " ".join(clauses)


class DiffusersGenerator:
    """A diffusers edit pipeline behind the `Generator` protocol; cost 0 (your own hardware).

    `pipeline_kwargs` go to every pipeline call (e.g. {"guidance_scale": 2.5}); `params` may carry
    `seed` and `num_inference_steps` per call.
    """

    name = "diffusers"

    def __init__(
        self,
        model: str | None = None,
        pipeline: str | None = None,
        num_inference_steps: int | None = None,
        torch_dtype: str | None = None,
        device: str | None = None,
        seed: int | None = None,
        pipeline_kwargs: dict[str, Any] | None = None,
        config_path: str | None = None,
        timeout: float | None = None,
        prices: dict | None = None,
    ):
        sec = cfgmod.section(cfgmod.load_config(config_path), "generators", "diffusers")
        self.pipeline_class = pipeline or sec.get("pipeline") or "StableDiffusionInstructPix2PixPipeline"
        defaults = sec.get("models") or {}
        self.model = str(model or defaults.get(self.pipeline_class) or "")
        if not self.model:
            raise ValueError(
                f"no model for {self.pipeline_class}: pass model=PATH_OR_HUB_ID "
                f"(models.yaml knows defaults for {', '.join(defaults)})"
            )
        self.num_inference_steps = int(num_inference_steps or sec.get("num_inference_steps") or 30)
        if self.num_inference_steps < 1:
            raise ValueError(f"num_inference_steps must be >= 1, got {self.num_inference_steps}")
        self.torch_dtype = torch_dtype or sec.get("torch_dtype") or "auto"
        self.device = device
        self.seed = int(seed if seed is not None else sec.get("seed", 0))
        self.pipeline_kwargs = dict(pipeline_kwargs or {})
        self._pipe: Any = None
        self._load_error: FatalBackendError | None = None
        self._warned_long = False
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"DiffusersGenerator(pipeline={self.pipeline_class!r}, model={self.model!r})"

    def _load(self) -> Any:
        looks_local = self.model.startswith((".", "/", "~")) or Path(self.model).exists()
        if looks_local and not (Path(self.model).expanduser() / "model_index.json").is_file():
            raise FileNotFoundError(f"{self.model}: no model_index.json; expected a folder saved by save_pretrained")
        torch = require("torch", "diffusion")
        diffusers = require("diffusers", "diffusion")
        cls = getattr(diffusers, self.pipeline_class, None)
        if cls is None or not hasattr(cls, "from_pretrained"):
            raise ValueError(
                f"diffusers {diffusers.__version__} has no pipeline {self.pipeline_class!r}; expected e.g. "
                "QwenImageEditPipeline, FluxKontextPipeline, StableDiffusionInstructPix2PixPipeline"
            )
        device = self.device or (
            "cuda" if torch.cuda.is_available() else "mps" if torch.backends.mps.is_available() else "cpu"
        )
        if self.torch_dtype == "auto":
            dtype = torch.bfloat16 if device.startswith("cuda") else torch.float32
        else:
            dtype = getattr(torch, str(self.torch_dtype), None)
            if not isinstance(dtype, torch.dtype):
                raise ValueError(f"unknown torch_dtype {self.torch_dtype!r}; e.g. auto, float32, bfloat16, float16")
        pipe = cls.from_pretrained(str(Path(self.model).expanduser()) if looks_local else self.model, torch_dtype=dtype)
        pipe = pipe.to(device)
        pipe.set_progress_bar_config(disable=True)
        self._device = device
        return pipe

    def pipeline(self) -> Any:
        """The loaded pipeline (loaded on first use); FatalBackendError when it cannot be."""
        if self._load_error is not None:
            raise self._load_error
        if self._pipe is None:
            try:
                self._pipe = self._load()
            except Exception as err:  # noqa: BLE001 - any load failure stops the run, with its reason
                self._load_error = FatalBackendError(
                    f"diffusers {self.pipeline_class}: cannot load model {self.model!r}: {type(err).__name__}: {err}")
                raise self._load_error from None
        return self._pipe

    def prompt_args(self, prompt: str) -> tuple[dict[str, Any], dict[str, Any]]:
        """(pipeline prompt kwargs, usage notes): the prompt fitted to the text encoder's limit."""
        pipe = self.pipeline()
        tokenizer = getattr(pipe, "tokenizer", None)
        limit = getattr(tokenizer, "model_max_length", None)
        if tokenizer is None or not isinstance(limit, int) or limit > 100_000:  # no limit stated
            return {"prompt": prompt}, {}

        def count(text: str) -> int:
            return len(tokenizer(text, truncation=False)["input_ids"])

        tokens = count(prompt)
        if tokens <= limit:
            return {"prompt": prompt}, {"prompt_tokens": tokens}
        short = fit_prompt(prompt, count, limit)
        if not self._warned_long:
            log.warning("diffusers %s: prompt of %d tokens is over the text encoder's %d; sent as %d tokens: %r",
                        self.pipeline_class, tokens, limit, count(short), short)
            self._warned_long = True
        args = {"prompt": short}
        if "prompt_2" in inspect.signature(type(pipe).__call__).parameters:
            args["prompt_2"] = prompt  # the long-context encoder (T5) still reads all of it
        return args, {"prompt_tokens": tokens, "prompt_limit": limit, "prompt_used": short}

    def restore(self, image: bytes, prompt: str, params: dict[str, Any]) -> GenerationResult:
        torch = require("torch", "diffusion")
        lq = to_rgb(open_image(image, name="LQ image"))
        steps = int(params.get("num_inference_steps") or self.num_inference_steps)
        with self._lock:
            pipe = self.pipeline()
            prompt_kwargs, notes = self.prompt_args(prompt)
            generator = torch.Generator(device="cpu").manual_seed(int(params.get("seed", self.seed)))
            try:
                out = pipe(
                    **prompt_kwargs, image=lq, num_inference_steps=steps, generator=generator, **self.pipeline_kwargs
                ).images[0]
            except torch.OutOfMemoryError as err:  # another job holds the memory: worth a retry later
                if self._device.startswith("cuda"):
                    torch.cuda.empty_cache()
                raise TransientBackendError(f"diffusers {self.pipeline_class}: out of memory ({err})") from None
        png = encode_png(out.convert("RGB"))
        return GenerationResult(
            image=png,
            mime_type="image/png",
            size=out.size,
            finish_reason=FINISH_OK,
            usage={"num_inference_steps": steps, **notes},
            cost_usd=0.0,
            model=self.model,
        )
