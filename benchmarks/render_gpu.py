"""Render speed of the full-size SD 2.1 unCLIP + canny ControlNet on a GPU, with random weights.

Speed does not depend on weight values, so no download is needed: the pipeline is built from the
component configs in ``benchmarks/configs/`` (UNet, VAE, ViT-H/14 image encoder, OpenCLIP-H text
encoder, image normalizer, schedulers, SD 2.1 canny ControlNet) with random weights, and run
through doge's own render path (``doge.rendering.plan.plan`` + ``doge.rendering.run.run_plan``: source
decoding, canny maps, CLIP embedding + gap, generation, PNG writes, manifest). Batch size 1 is
one source per pipeline call, as the paper's code renders; larger batch sizes are doge's batched
path. Attention is PyTorch's SDPA; ``--compile`` adds ``torch.compile`` of the UNet and ControlNet.

    .venv/bin/python benchmarks/render_gpu.py                                  # 768 px, 20 steps, fp16
    .venv/bin/python benchmarks/render_gpu.py --compile --batch-sizes 1 8
    .venv/bin/python benchmarks/render_gpu.py --tiny --device cpu --dtype fp32 --size 64 --steps 1   # sanity run
    .venv/bin/python benchmarks/render_gpu.py --count-params                     # sizes only, no memory used
"""

from __future__ import annotations

import argparse
import json
import shutil
import sys
import tempfile
import time
import warnings
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from common import machine, print_table, registry_with_gap, render_sources

CONFIGS = Path(__file__).resolve().parent / "configs"
MODEL = CONFIGS / "sd21-unclip"
CONTROLNET = CONFIGS / "sd21-controlnet-canny"


def main() -> None:
    args = _parse()
    import torch

    # Random weights overflow fp16 here and there; the NaNs cost the same time and make noise images.
    warnings.filterwarnings("ignore", message="invalid value encountered in cast")

    if args.count_params:
        return _count_params()
    work = Path(args.work or tempfile.mkdtemp(prefix="doge-bench-render-gpu-"))
    model, controlnet = _tiny(work) if args.tiny else (MODEL, CONTROLNET)
    device = args.device or ("cuda" if torch.cuda.is_available() else "cpu")
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16, "fp32": torch.float32}[args.dtype]
    sources = render_sources(work / "sources", args.images, args.size)
    home = registry_with_gap(work / "home", model)

    print(f"machine: {machine()}")
    if device.startswith("cuda"):
        print(f"gpu: {torch.cuda.get_device_name(device)}")
    print(
        f"model: {'tiny' if args.tiny else 'SD 2.1 unCLIP + SD 2.1 canny ControlNet'} (random weights); "
        f"{args.size}x{args.size}, {args.steps} steps, {args.dtype}, {args.images} images, device {device}"
    )
    start = time.perf_counter()
    pipe = build_pipeline(model, controlnet, device, dtype)
    print(
        f"built the pipeline in {time.perf_counter() - start:.1f} s: "
        f"{_params(pipe.unet) / 1e6:.1f}M UNet, {_params(pipe.controlnet) / 1e6:.1f}M ControlNet parameters"
    )

    modes = [("eager", False)] + ([("compiled", True)] if args.compile else [])
    rows, records = [], []
    for mode, compiled in modes:
        if compiled:
            pipe.unet = torch.compile(pipe.unet)
            pipe.controlnet = torch.compile(pipe.controlnet)
        for batch_size in args.batch_sizes:
            record = _measure(args, pipe, model, controlnet, home, sources, work, device, dtype, batch_size)
            record.update(mode=mode, path="paper: 1 source per call" if batch_size == 1 else "doge batched")
            records.append(record)
            rows.append(
                [
                    record["path"],
                    mode,
                    batch_size,
                    record["images"],
                    record["seconds"],
                    record["images_per_s"],
                    record["s_per_image"],
                    record["peak_gpu_gb"],
                ]
            )
            print(json.dumps(record), flush=True)
    print_table(
        f"Render speed, {args.size}x{args.size}, {args.steps} steps, {args.dtype}, SDPA",
        ["path", "mode", "batch size", "images", "seconds", "img/s", "s/img", "peak GPU GB"],
        rows,
    )
    if args.json_out:
        Path(args.json_out).write_text(json.dumps(records, indent=2) + "\n")
    if not args.work:
        shutil.rmtree(work, ignore_errors=True)


def _parse():
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=20)
    parser.add_argument("--size", type=int, default=768)
    parser.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 2, 4, 8])
    parser.add_argument("--images", type=int, default=16, help="Images timed per batch size (after a warm-up batch).")
    parser.add_argument("--compile", action="store_true", help="Also time torch.compile'd UNet and ControlNet.")
    parser.add_argument("--dtype", choices=["fp16", "bf16", "fp32"], default="fp16")
    parser.add_argument("--device", help="Default: cuda if there is one, else cpu.")
    parser.add_argument(
        "--tiny", action="store_true", help="Use the tiny model's configs (a quick check of this script)."
    )
    parser.add_argument("--count-params", action="store_true", help="Print the full-size components' sizes and stop.")
    parser.add_argument("--work", help="Folder for sources and outputs (default: a temp folder, removed after).")
    parser.add_argument("--json-out", help="Also write the figures to this JSON file.")
    return parser.parse_args()


def _tiny(work: Path) -> tuple[Path, Path]:
    from doge.testing import build_tiny_unclip

    model = build_tiny_unclip(work / "tiny-unclip")
    return model, model / "controlnet"


def build_pipeline(model: Path, controlnet: Path, device: str, dtype):
    """doge's unCLIP + ControlNet pipeline from ``model``'s and ``controlnet``'s configs, random weights."""
    import torch
    import transformers
    from diffusers import AutoencoderKL, ControlNetModel, DDIMScheduler, DDPMScheduler, UNet2DConditionModel
    from diffusers.models.attention_processor import AttnProcessor2_0
    from diffusers.pipelines.stable_diffusion.stable_unclip_image_normalizer import StableUnCLIPImageNormalizer
    from diffusers.utils import logging as diffusers_logging
    from transformers import CLIPTextConfig, CLIPTextModel, CLIPVisionConfig, CLIPVisionModelWithProjection

    from doge.hub import quiet_loading
    from doge.rendering.pipeline import StableUnCLIPControlNetImg2ImgPipeline

    quiet_loading()
    diffusers_logging.set_verbosity_error()  # no notice about casting a random model with .to(dtype)
    default_dtype = torch.get_default_dtype()
    # Random initialisation right on the device and in the target dtype: seconds, and no fp32 copy.
    torch.set_default_dtype(dtype)
    try:
        with torch.device(device):
            unet = UNet2DConditionModel.from_config(UNet2DConditionModel.load_config(model / "unet"))
            net = ControlNetModel.from_config(ControlNetModel.load_config(controlnet))
            vae = AutoencoderKL.from_config(AutoencoderKL.load_config(model / "vae"))
            image_encoder = CLIPVisionModelWithProjection(CLIPVisionConfig.from_pretrained(model / "image_encoder"))
            text_encoder = CLIPTextModel(CLIPTextConfig.from_pretrained(model / "text_encoder"))
            normalizer = StableUnCLIPImageNormalizer.from_config(
                StableUnCLIPImageNormalizer.load_config(model / "image_normalizer")
            )
    finally:
        torch.set_default_dtype(default_dtype)
    processor_cls = getattr(transformers, "CLIPImageProcessorPil", None) or transformers.CLIPImageProcessor
    pipe = StableUnCLIPControlNetImg2ImgPipeline(
        feature_extractor=processor_cls.from_pretrained(model / "feature_extractor"),
        image_encoder=image_encoder.eval(),
        image_normalizer=normalizer,
        image_noising_scheduler=DDPMScheduler.from_config(DDPMScheduler.load_config(model / "image_noising_scheduler")),
        tokenizer=_tokenizer(),
        text_encoder=text_encoder.eval(),
        unet=unet.eval(),
        scheduler=DDIMScheduler.from_config(DDIMScheduler.load_config(model / "scheduler")),
        vae=vae.eval(),
        controlnet=net.eval(),
    )
    pipe.unet.set_attn_processor(AttnProcessor2_0())
    pipe.controlnet.set_attn_processor(AttnProcessor2_0())
    pipe.set_progress_bar_config(disable=True)
    return pipe.to(device=device, dtype=dtype)


def _tokenizer():
    """A small byte-level BPE tokenizer: prompts here are empty, and speed does not depend on the vocabulary."""
    from transformers import CLIPTokenizer

    from doge.testing import write_tokenizer_files

    with tempfile.TemporaryDirectory() as tmp:
        write_tokenizer_files(Path(tmp))
        return CLIPTokenizer.from_pretrained(tmp, model_max_length=77)


def _measure(args, pipe, model, controlnet, home, sources, work, device, dtype, batch_size) -> dict:
    """One warm-up batch, then ``args.images`` images at ``batch_size``, through doge's render path."""
    import torch

    from doge.rendering.plan import plan
    from doge.rendering.run import Engine, run_plan

    engine = Engine(pipe, device, str(dtype).removeprefix("torch."), tiny=args.tiny)
    common = dict(
        model=str(model),
        controls=["canny"],
        controlnets=[str(controlnet)],
        size=args.size,
        steps=args.steps,
        batch_size=batch_size,
        device=device,
        home=home,
    )
    run_plan(
        plan(["real->bench"], sources, work / f"warm-{batch_size}", count=batch_size, **common),
        progress=False,
        engine=engine,
    )
    if device.startswith("cuda"):
        torch.cuda.synchronize()
        torch.cuda.reset_peak_memory_stats()
    out = work / f"out-{batch_size}"
    shutil.rmtree(out, ignore_errors=True)
    p = plan(["real->bench"], sources, out, count=args.images, **common)
    start = time.perf_counter()
    result = run_plan(p, progress=False, engine=engine)
    if device.startswith("cuda"):
        torch.cuda.synchronize()
    seconds = time.perf_counter() - start
    peak = torch.cuda.max_memory_allocated() / 2**30 if device.startswith("cuda") else float("nan")
    images = len(result.written)
    return {
        "batch_size": batch_size,
        "images": images,
        "seconds": round(seconds, 3),
        "images_per_s": round(images / seconds, 4),
        "s_per_image": round(seconds / images, 4),
        "peak_gpu_gb": round(peak, 2),
        "size": args.size,
        "steps": args.steps,
        "dtype": args.dtype,
    }


def _params(module) -> int:
    return sum(p.numel() for p in module.parameters())


def _count_params() -> None:
    """Build every full-size component on the meta device (no memory) and print its size."""
    import torch

    pipe = build_pipeline(MODEL, CONTROLNET, "meta", torch.float16)
    rows = [
        [name, f"{_params(getattr(pipe, name)) / 1e6:.1f}M"]
        for name in ("unet", "controlnet", "vae", "image_encoder", "text_encoder")
    ]
    print_table("Full-size components (random weights, from benchmarks/configs)", ["component", "parameters"], rows)


if __name__ == "__main__":
    main()
