"""The `diffusers` generator: a local instruction-edit pipeline as a restorer, on your own GPU.

Any diffusers pipeline that takes `prompt` and `image` works; the ones meant here are
`QwenImageEditPipeline`, `FluxKontextPipeline` and `StableDiffusionInstructPix2PixPipeline`.
The pipeline class and its default model per class are in models.yaml; `model` may be a Hub id
or a local folder written by `save_pretrained`. Loading is lazy (first `restore`), and calls are
serialised: one pipeline, one GPU.

Example:
    >>> from ggt_datasets.backends import make_generator
    >>> gen = make_generator("diffusers", pipeline="FluxKontextPipeline", num_inference_steps=28)  # doctest: +SKIP
    >>> gen.restore(lq_bytes, "Remove the haze; keep everything else.", {"category": "haze"}).size  # doctest: +SKIP
    (1024, 688)
"""

from __future__ import annotations

import threading
from pathlib import Path
from typing import Any

from ggt_datasets._optional import require
from ggt_datasets.backends import config as cfgmod
from ggt_datasets.backends.base import FINISH_OK, GenerationResult, TransientBackendError
from ggt_datasets.images import encode_png, open_image, to_rgb


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
        self._lock = threading.Lock()

    def __repr__(self) -> str:
        return f"DiffusersGenerator(pipeline={self.pipeline_class!r}, model={self.model!r})"

    def _load(self) -> Any:
        torch = require("torch", "diffusion")
        diffusers = require("diffusers", "diffusion")
        cls = getattr(diffusers, self.pipeline_class, None)
        if cls is None or not hasattr(cls, "from_pretrained"):
            raise ValueError(
                f"diffusers {diffusers.__version__} has no pipeline {self.pipeline_class!r}; expected e.g. "
                "QwenImageEditPipeline, FluxKontextPipeline, StableDiffusionInstructPix2PixPipeline"
            )
        looks_local = self.model.startswith((".", "/", "~")) or Path(self.model).exists()
        if looks_local and not (Path(self.model).expanduser() / "model_index.json").is_file():
            raise FileNotFoundError(f"{self.model}: no model_index.json; expected a folder saved by save_pretrained")
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

    def restore(self, image: bytes, prompt: str, params: dict[str, Any]) -> GenerationResult:
        torch = require("torch", "diffusion")
        lq = to_rgb(open_image(image, name="LQ image"))
        steps = int(params.get("num_inference_steps") or self.num_inference_steps)
        with self._lock:
            if self._pipe is None:
                self._pipe = self._load()
            generator = torch.Generator(device="cpu").manual_seed(int(params.get("seed", self.seed)))
            try:
                out = self._pipe(
                    prompt=prompt, image=lq, num_inference_steps=steps, generator=generator, **self.pipeline_kwargs
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
            usage={"num_inference_steps": steps},
            cost_usd=0.0,
            model=self.model,
        )
