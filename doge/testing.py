"""doge's test kit: tiny random models in the real models' layouts, for tests and offline trials.

A plugin author tests a plugin against these, as doge's own tests do (see
``docs/howto/test-a-plugin.md``); each builder writes a folder that loads through the same
``from_pretrained`` path a real model takes.

``build_tiny_unclip`` writes a Stable unCLIP img2img pipeline (diffusers layout, nine components)
plus a ``controlnet/`` folder that fits its UNet, a ``clip-text/`` CLIP model whose vision half is
the pipeline's image encoder (the text tower ``doge gap explain`` and text gaps use) and
``hed/ControlNetHED.safetensors`` (random HED edge-detector weights of the real architecture); ``build_tiny_clip`` writes a plain CLIP vision
model folder. Both are random: their images are noise, but every code path a real model takes
(``from_pretrained``, encode, render) runs on them in well under a second on a CPU.
"""

from __future__ import annotations

import json
import os
import tempfile
from pathlib import Path
from typing import TYPE_CHECKING, Any

from doge.hub import MARKER, MARKER_TEXT, is_tiny_model, quiet_transformers

if TYPE_CHECKING:  # transformers and diffusers load when a tiny model is built, not on import
    # from diffusers' submodules: type checkers read its top-level names as dummy placeholders
    from diffusers.models import AutoencoderKL, ControlNetModel, UNet2DConditionModel
    from diffusers.schedulers import DDIMScheduler, DDPMScheduler
    from transformers import CLIPTokenizer, CLIPVisionModelWithProjection
    from transformers.image_processing_utils import BaseImageProcessor

EMBED_DIM = 32  # CLIP width and projection width
IMAGE_SIZE = 32  # CLIP vision input; small so encoding is quick
PATCH_SIZE = 4
LATENT_CHANNELS = 4

# A handful of merges over a few words prompts tend to use; the rest falls back to bytes.
_MERGES = (
    "t h",
    "th e</w>",
    "a n",
    "an d</w>",
    "o f</w>",
    "p h",
    "ph o",
    "pho t",
    "phot o</w>",
    "i n",
    "in g</w>",
    "p a",
    "pa in",
    "pain t",
    "paint ing</w>",
    "r e",
    "re a",
    "rea l</w>",
)


def _bytes_to_unicode() -> dict[int, str]:
    """Byte-level BPE's reversible map from bytes to printable characters (GPT-2/CLIP scheme)."""
    printable = (
        list(range(ord("!"), ord("~") + 1)) + list(range(ord("¡"), ord("¬") + 1)) + list(range(ord("®"), ord("ÿ") + 1))
    )
    mapping = {b: chr(b) for b in printable}
    shift = 0
    for b in range(256):
        if b not in mapping:
            mapping[b] = chr(256 + shift)
            shift += 1
    return mapping


def _tiny_vocab() -> dict[str, int]:
    chars = [_bytes_to_unicode()[b] for b in range(256)]
    tokens = chars + [c + "</w>" for c in chars]
    tokens += ["".join(merge.split(" ")) for merge in _MERGES]
    tokens += ["<|startoftext|>", "<|endoftext|>"]
    return {token: i for i, token in enumerate(tokens)}


def write_tokenizer_files(folder: Path) -> None:
    """Write ``vocab.json`` and ``merges.txt`` of the tiny byte-level BPE vocabulary."""
    folder.mkdir(parents=True, exist_ok=True)
    (folder / "vocab.json").write_text(json.dumps(_tiny_vocab(), ensure_ascii=False), encoding="utf-8")
    (folder / "merges.txt").write_text("#version: 0.2\n" + "\n".join(_MERGES) + "\n", encoding="utf-8")


def _tokenizer() -> CLIPTokenizer:
    from transformers import CLIPTokenizer

    with tempfile.TemporaryDirectory() as tmp:
        write_tokenizer_files(Path(tmp))
        # Without model_max_length a hand-made tokenizer pads to a huge length and overflows.
        return CLIPTokenizer.from_pretrained(tmp, model_max_length=77)


def _image_processor() -> BaseImageProcessor:
    import transformers

    # Without torchvision, CLIPImageProcessor falls back to the PIL one with a warning.
    cls = getattr(transformers, "CLIPImageProcessorPil", None) or transformers.CLIPImageProcessor
    return cls(
        size={"shortest_edge": IMAGE_SIZE},
        crop_size={"height": IMAGE_SIZE, "width": IMAGE_SIZE},
        do_center_crop=True,
        do_resize=True,
    )


def _vision_model() -> CLIPVisionModelWithProjection:
    from transformers import CLIPVisionConfig, CLIPVisionModelWithProjection

    config = CLIPVisionConfig(
        hidden_size=EMBED_DIM,
        projection_dim=EMBED_DIM,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        image_size=IMAGE_SIZE,
        patch_size=PATCH_SIZE,
        num_channels=3,
    )
    return CLIPVisionModelWithProjection(config).eval()


def _text_model(vocab_size: int):
    from transformers import CLIPTextConfig, CLIPTextModel

    config = CLIPTextConfig(
        vocab_size=vocab_size,
        hidden_size=EMBED_DIM,
        projection_dim=EMBED_DIM,
        intermediate_size=37,
        num_hidden_layers=2,
        num_attention_heads=4,
        max_position_embeddings=77,
        bos_token_id=vocab_size - 2,
        eos_token_id=vocab_size - 1,
        pad_token_id=vocab_size - 1,
    )
    return CLIPTextModel(config).eval()


def _aligned_clip(image_encoder, vocab_size: int):
    """A full ``CLIPModel`` whose vision half is ``image_encoder``: its text tower shares that space."""
    from transformers import CLIPConfig, CLIPModel

    text = _text_model(vocab_size).config.to_dict()
    config = CLIPConfig(text_config=text, vision_config=image_encoder.config.to_dict(), projection_dim=EMBED_DIM)
    model = CLIPModel(config).eval()
    model.vision_model.load_state_dict(image_encoder.vision_model.state_dict())
    model.visual_projection.load_state_dict(image_encoder.visual_projection.state_dict())
    return model


def _unet_config() -> dict:
    return dict(
        sample_size=8,
        in_channels=LATENT_CHANNELS,
        out_channels=LATENT_CHANNELS,
        down_block_types=("CrossAttnDownBlock2D", "DownBlock2D"),
        up_block_types=("UpBlock2D", "CrossAttnUpBlock2D"),
        block_out_channels=(32, 64),
        layers_per_block=1,
        norm_num_groups=32,
        attention_head_dim=(2, 4),
        cross_attention_dim=EMBED_DIM,
        use_linear_projection=True,
        upcast_attention=True,
        # unCLIP feeds [noised image embedding, noise-level embedding] as the class label.
        class_embed_type="projection",
        projection_class_embeddings_input_dim=2 * EMBED_DIM,
    )


def _unet() -> UNet2DConditionModel:
    from diffusers import UNet2DConditionModel

    unet: Any = UNet2DConditionModel(**_unet_config())  # diffusers' models type as their config mixin
    return unet.eval()


def _controlnet() -> ControlNetModel:
    from diffusers import ControlNetModel

    config = _unet_config()
    for key in ("sample_size", "out_channels", "up_block_types"):
        config.pop(key)
    # Same downsampling as the VAE (8x), so a full-size control image lands on the latent grid.
    # Built from a config, its zero convolutions start at zero: residuals are zero by default.
    controlnet: Any = ControlNetModel(conditioning_embedding_out_channels=(8, 8, 16, 16), **config)
    return controlnet.eval()


def _vae() -> AutoencoderKL:
    from diffusers import AutoencoderKL

    # Four blocks give the 8x downsampling of the real SD VAE; 64 px images -> 8x8 latents.
    vae: Any = AutoencoderKL(
        in_channels=3,
        out_channels=3,
        down_block_types=("DownEncoderBlock2D",) * 4,
        up_block_types=("UpDecoderBlock2D",) * 4,
        block_out_channels=(8, 8, 16, 16),
        layers_per_block=1,
        norm_num_groups=8,
        latent_channels=LATENT_CHANNELS,
        sample_size=64,
    )
    return vae.eval()


def _schedulers() -> tuple[DDPMScheduler, DDIMScheduler]:
    from diffusers import DDIMScheduler, DDPMScheduler

    noising = DDPMScheduler(num_train_timesteps=1000, beta_schedule="squaredcos_cap_v2")
    scheduler = DDIMScheduler(
        num_train_timesteps=1000,
        beta_schedule="scaled_linear",
        beta_start=0.00085,
        beta_end=0.012,
        prediction_type="v_prediction",
        set_alpha_to_one=False,
        steps_offset=1,
        clip_sample=False,
    )
    return noising, scheduler


def _name_processor_portably(path: Path) -> None:
    """Record the feature extractor as ``CLIPImageProcessor``, as real unCLIP models do.

    Without torchvision, transformers names it ``CLIPImageProcessorPil``, a class older
    transformers lack; every version resolves ``CLIPImageProcessor``.
    """
    index_file = path / "model_index.json"
    index = json.loads(index_file.read_text(encoding="utf-8"))
    index["feature_extractor"] = ["transformers", "CLIPImageProcessor"]
    index_file.write_text(json.dumps(index, indent=2, sort_keys=True) + "\n", encoding="utf-8")


def _write_marker(path: Path) -> None:
    (path / MARKER).write_text(MARKER_TEXT, encoding="utf-8")


def build_tiny_unclip(path: str | os.PathLike, seed: int = 0) -> Path:
    """Write a tiny random Stable unCLIP img2img pipeline and a fitting ControlNet to ``path``.

    The same seed gives byte-identical weight files. The caller's torch RNG is left untouched.
    """
    import torch

    path = Path(path)
    with quiet_transformers(), torch.random.fork_rng(devices=[]):
        from diffusers import StableUnCLIPImg2ImgPipeline
        from diffusers.pipelines.stable_diffusion.stable_unclip_image_normalizer import (
            StableUnCLIPImageNormalizer,
        )

        torch.manual_seed(seed)
        tokenizer = _tokenizer()
        image_encoder = _vision_model()
        text_encoder = _text_model(len(tokenizer))
        unet = _unet()
        vae = _vae()
        controlnet = _controlnet()
        noising, scheduler = _schedulers()
        pipe = StableUnCLIPImg2ImgPipeline(
            feature_extractor=_image_processor(),
            image_encoder=image_encoder,
            image_normalizer=StableUnCLIPImageNormalizer(embedding_dim=EMBED_DIM),
            image_noising_scheduler=noising,
            tokenizer=tokenizer,
            text_encoder=text_encoder,
            unet=unet,
            scheduler=scheduler,
            vae=vae,
        )
        # diffusers' __init__ also binds the name to a dummy class, which mypy sees instead
        pipe.save_pretrained(path, safe_serialization=True)  # type: ignore[attr-defined]
        controlnet.save_pretrained(path / "controlnet", safe_serialization=True)
        # Built after the pipeline, so adding them left the pipeline's weights as they were.
        _aligned_clip(image_encoder, len(tokenizer)).save_pretrained(path / "clip-text", safe_serialization=True)
        tokenizer.save_pretrained(path / "clip-text")
        _write_hed(path / "hed", seed)
    _name_processor_portably(path)
    write_tokenizer_files(path / "tokenizer")
    write_tokenizer_files(path / "clip-text")
    _write_marker(path)
    return path


def _write_hed(folder: Path, seed: int) -> None:
    from doge.pluginmanager import get

    get("controls", "hed").write_random_weights(folder / "ControlNetHED.safetensors", seed=seed)


def build_tiny_clip(path: str | os.PathLike, seed: int = 0) -> Path:
    """Write a tiny random plain CLIP vision model (like ``openai/clip-vit-...``) to ``path``."""
    import torch

    path = Path(path)
    with quiet_transformers(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        model = _vision_model()
        model.save_pretrained(path, safe_serialization=True)
        _image_processor().save_pretrained(path)
    _write_marker(path)
    return path


def build_tiny_depth(path: str | os.PathLike, seed: int = 0) -> Path:
    """Write a tiny random DPT depth model and its processor to ``path``, for the depth control.

    It loads through ``AutoModelForDepthEstimation.from_pretrained(path)`` exactly like a real one.
    The same seed gives the same weights; the caller's torch RNG is left untouched.
    """
    import torch
    from transformers import DPTConfig, DPTForDepthEstimation, DPTImageProcessor

    path = Path(path)
    config = DPTConfig(
        hidden_size=32,
        num_hidden_layers=4,
        num_attention_heads=2,
        intermediate_size=64,
        image_size=32,
        patch_size=8,
        backbone_out_indices=[0, 1, 2, 3],
        neck_hidden_sizes=[8, 16, 32, 32],
        reassemble_factors=[4, 2, 1, 0.5],
        fusion_hidden_size=16,
        # Larger than the default 0.02 so the random head's output is not vanishingly small.
        initializer_range=0.1,
    )
    with quiet_transformers(), torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        DPTForDepthEstimation(config).eval().save_pretrained(path)
    DPTImageProcessor(size={"height": 32, "width": 32}, keep_aspect_ratio=False).save_pretrained(path)
    return path


def activate_controlnet(net, seed: int = 1, scale: float = 0.5):
    """Give a ControlNet built from a config non-zero zero-convolutions, so its residuals matter.

    A fresh ControlNet adds nothing: its output convolutions, and the last convolution of its
    control-image embedding, start at zero. Tests and demos that must see a control act use this.
    """
    import torch

    gen = torch.Generator().manual_seed(seed)
    convs = [*net.controlnet_down_blocks, net.controlnet_mid_block, net.controlnet_cond_embedding.conv_out]
    with torch.no_grad():
        for conv in convs:
            conv.weight.copy_(torch.randn(conv.weight.shape, generator=gen) * scale)
    return net


def build_active_controlnet(model_path: str | os.PathLike, path: str | os.PathLike, seed: int = 1) -> Path:
    """Save the tiny model's ControlNet, made active with :func:`activate_controlnet`, to ``path``."""
    from diffusers import ControlNetModel

    net = activate_controlnet(ControlNetModel.from_pretrained(Path(model_path) / "controlnet"), seed)
    net.save_pretrained(path, safe_serialization=True)
    _write_marker(Path(path))
    return Path(path)


def build_tiny_lora(model_path: str | os.PathLike, path: str | os.PathLike, seed: int = 5) -> Path:
    """A random, non-zero LoRA for the tiny model's UNet attention, saved the diffusers way."""
    import torch
    from diffusers import StableUnCLIPImg2ImgPipeline, UNet2DConditionModel
    from diffusers.utils import convert_state_dict_to_diffusers
    from peft import LoraConfig
    from peft.utils import get_peft_model_state_dict

    unet = UNet2DConditionModel.from_pretrained(Path(model_path) / "unet")
    unet.add_adapter(LoraConfig(r=4, lora_alpha=4, target_modules=["to_q", "to_k", "to_v", "to_out.0"]))
    gen = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for name, param in unet.named_parameters():
            if "lora_B" in name:  # lora_B starts at zero: a fresh LoRA would change nothing
                param.copy_(torch.randn(param.shape, generator=gen))
    layers = convert_state_dict_to_diffusers(get_peft_model_state_dict(unet))
    StableUnCLIPImg2ImgPipeline.save_lora_weights(path, unet_lora_layers=layers)
    return Path(path)


__all__ = [
    "EMBED_DIM",
    "MARKER",
    "activate_controlnet",
    "build_active_controlnet",
    "build_tiny_clip",
    "build_tiny_depth",
    "build_tiny_lora",
    "build_tiny_unclip",
    "is_tiny_model",
    "write_tokenizer_files",
]
