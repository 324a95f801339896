"""Stable unCLIP img2img with ControlNet (diffusers has each half, not the two together).

`StableUnCLIPControlNetImg2ImgPipeline` is diffusers' `StableUnCLIPImg2ImgPipeline` with an
optional `controlnet` component. A step without control (no controlnet, a conditioning scale of
0, or outside a net's guidance window) calls the UNet exactly as the parent does, so such a
render equals the parent's bit for bit.

Batches: B sources (rows of `image_embeds`, or images) and N = `num_images_per_prompt` give B*N
images; image b*N + k is the k-th image of source b. With `generator` a list of B*N generators,
every random draw of image b*N + k (its embedding noise and its latents) comes from generator
b*N + k, so an image does not depend on what else is in its batch.

Plays by diffusers' rules: `__init__` declares the parent's type hints, so ``from_pipe`` hands
the modules over both ways (``StableUnCLIPControlNetImg2ImgPipeline.from_pipe(stock, controlnet=net)``
and ``StableUnCLIPImg2ImgPipeline.from_pipe(doge_pipe)``, the same module objects); and the class
is registered in the ``diffusers`` namespace on import, so ``DiffusionPipeline.from_pretrained`` of
a saved doge pipeline (whose ``model_index.json`` names this class) restores it, ControlNets included.

Code that follows diffusers 0.42.1 says where it came from (``# from diffusers 0.42.1: module.function``)
so that it can be diffed against a newer diffusers.
"""

from collections.abc import Callable
from typing import Any, cast

import diffusers
import PIL.Image
import torch
from diffusers.callbacks import MultiPipelineCallbacks, PipelineCallback
from diffusers.image_processor import VaeImageProcessor
from diffusers.models import AutoencoderKL, ControlNetModel, MultiControlNetModel, UNet2DConditionModel
from diffusers.pipelines.pipeline_utils import ImagePipelineOutput

# from the defining module, not `diffusers`: type checkers read diffusers' top-level import as its
# dummy placeholder class, which has none of the pipeline's methods
from diffusers.pipelines.stable_diffusion.pipeline_stable_unclip_img2img import StableUnCLIPImg2ImgPipeline
from diffusers.pipelines.stable_diffusion.stable_unclip_image_normalizer import StableUnCLIPImageNormalizer
from diffusers.schedulers import KarrasDiffusionSchedulers
from transformers import CLIPImageProcessor, CLIPTextModel, CLIPTokenizer, CLIPVisionModelWithProjection

Residuals = tuple[list[torch.Tensor], torch.Tensor]


class StableUnCLIPControlNetImg2ImgPipeline(StableUnCLIPImg2ImgPipeline):
    """Stable unCLIP img2img whose UNet can be steered by one or more ControlNets.

    Loads like any diffusers pipeline: ``from_pretrained(path, controlnet=ControlNetModel...)``;
    a list of ControlNets becomes a `MultiControlNetModel`. `save_pretrained` writes the
    controlnet next to the other components (two or more as ``controlnet``, ``controlnet_1``, ...).
    LoRA loading is inherited from the parent.

    ``pipe.components`` rebuilds the pipeline: ``type(pipe)(**pipe.components)``. The stock
    `StableUnCLIPImg2ImgPipeline` does not take ``controlnet``: to go back to it, use
    ``StableUnCLIPImg2ImgPipeline.from_pipe(pipe)``, which leaves the ControlNet out.
    """

    _optional_components = ["controlnet"]
    # what callback_on_step_end may ask for (callback_on_step_end_tensor_inputs) and replace
    _callback_tensor_inputs = ["latents", "prompt_embeds", "image_embeds"]

    # Set by register_modules. Declared for type checkers as diffusers uses them: any scheduler
    # instance (the hint names an enum of scheduler kinds), configs read by attribute (typed dict).
    scheduler: Any
    unet: Any
    vae: Any
    controlnet: Any

    def __init__(
        self,
        # the parent's type hints: diffusers' from_pipe hands a model over only when its type matches
        feature_extractor: CLIPImageProcessor,
        image_encoder: CLIPVisionModelWithProjection,
        image_normalizer: StableUnCLIPImageNormalizer,
        image_noising_scheduler: KarrasDiffusionSchedulers,
        tokenizer: CLIPTokenizer,
        text_encoder: CLIPTextModel,
        unet: UNet2DConditionModel,
        scheduler: KarrasDiffusionSchedulers,
        vae: AutoencoderKL,
        controlnet: (
            ControlNetModel | list[ControlNetModel] | tuple[ControlNetModel] | MultiControlNetModel | None
        ) = None,
    ):
        super().__init__(
            feature_extractor=feature_extractor,
            image_encoder=image_encoder,
            image_normalizer=image_normalizer,
            image_noising_scheduler=image_noising_scheduler,
            tokenizer=tokenizer,
            text_encoder=text_encoder,
            unet=unet,
            scheduler=scheduler,
            vae=vae,
        )
        # from diffusers 0.42.1: StableDiffusionControlNetPipeline.__init__ (a list becomes a MultiControlNetModel)
        if isinstance(controlnet, (list, tuple)):
            controlnet = MultiControlNetModel(list(controlnet))
        self.register_modules(controlnet=controlnet)
        self.control_image_processor = VaeImageProcessor(
            vae_scale_factor=self.vae_scale_factor, do_convert_rgb=True, do_normalize=False
        )
        self._num_timesteps = 0
        self._interrupt = False

    @property
    def num_timesteps(self) -> int:
        """The number of denoising steps of the current (or last) call, as diffusers' pipelines have."""
        return self._num_timesteps

    @property
    def interrupt(self) -> bool:
        """True once a ``callback_on_step_end`` set ``pipe._interrupt = True``: the remaining steps are skipped."""
        return self._interrupt

    # ----- control images -------------------------------------------------------------------

    def control_nets(self) -> list[ControlNetModel]:
        """The ControlNets in use, in order; empty without a controlnet."""
        if self.controlnet is None:
            return []
        if isinstance(self.controlnet, MultiControlNetModel):
            return cast("list[ControlNetModel]", list(self.controlnet.nets))  # a ModuleList of ControlNets
        return [self.controlnet]

    def prepare_control_image(
        self,
        image,
        width: int | None,
        height: int | None,
        batch_size: int,
        num_images_per_prompt: int,
        device,
        dtype: torch.dtype,
        do_classifier_free_guidance: bool = False,
        guess_mode: bool = False,
    ) -> torch.Tensor:
        """One net's control image(s) as a tensor in [0, 1] of `batch_size` rows (twice that under
        classifier-free guidance, except in guess mode, where the net sees only the conditional half).

        `image` is one image for every output, or one per source (`batch_size / num_images_per_prompt`
        of them), each repeated `num_images_per_prompt` times in place.
        """
        # from diffusers 0.42.1: StableDiffusionControlNetPipeline.prepare_image (controlnet/pipeline_controlnet.py),
        # with one control image per source allowed and repeated in place
        image = self.control_image_processor.preprocess(image, height=height, width=width)
        image = image.to(dtype=torch.float32)
        given = image.shape[0]
        if given == 1:
            repeat = batch_size
        elif given * num_images_per_prompt == batch_size:
            repeat = num_images_per_prompt
        else:
            raise ValueError(
                f"got {given} control images for {batch_size // num_images_per_prompt} sources; "
                "pass one control image, or one per source"
            )
        image = image.repeat_interleave(repeat, dim=0).to(device=device, dtype=dtype)
        if do_classifier_free_guidance and not guess_mode:
            image = torch.cat([image] * 2)
        return image

    def prepare_control_images(
        self,
        control_image,
        width: int | None,
        height: int | None,
        batch_size: int,
        num_images_per_prompt: int,
        device,
        do_classifier_free_guidance: bool = False,
        guess_mode: bool = False,
    ) -> list[torch.Tensor]:
        """Control images for every net, one tensor per net (see `prepare_control_image`).

        With a `MultiControlNetModel`, `control_image` is a list with one entry per net.
        """
        nets = self.control_nets()
        if isinstance(self.controlnet, MultiControlNetModel):
            if not isinstance(control_image, (list, tuple)) or len(control_image) != len(nets):
                raise ValueError(f"with {len(nets)} ControlNets, pass control_image as a list of {len(nets)}")
            per_net = list(control_image)
        else:
            per_net = [control_image]
        return [
            self.prepare_control_image(
                image,
                width,
                height,
                batch_size,
                num_images_per_prompt,
                device,
                net.dtype,
                do_classifier_free_guidance,
                guess_mode,
            )
            for image, net in zip(per_net, nets)
        ]

    # ----- conditioning ---------------------------------------------------------------------

    def encode_image_embeddings(
        self,
        image,
        image_embeds: torch.Tensor | None,
        n_sources: int,
        total: int,
        noise_level: int,
        generator,
        device,
        do_classifier_free_guidance: bool,
    ) -> torch.Tensor:
        """Noised CLIP image embeddings (with their noise-level embedding), `total` rows, repeated
        per source in place; under guidance the unconditional half (zeros) comes first."""
        # from diffusers 0.42.1: StableUnCLIPImg2ImgPipeline._encode_image (pipeline_stable_unclip_img2img.py),
        # with one generator per image allowed
        if image_embeds is None:
            if not isinstance(image, torch.Tensor):
                image = self.feature_extractor(images=image, return_tensors="pt").pixel_values
            elif image.ndim == 3:
                image = image.unsqueeze(0)
            dtype = next(self.image_encoder.parameters()).dtype
            image_embeds = self.image_encoder(image.to(device=device, dtype=dtype)).image_embeds
        image_embeds = image_embeds.reshape(n_sources, -1).to(device=device, dtype=self.unet.dtype)
        repeat = total // n_sources
        if isinstance(generator, list):
            # one generator per image: noise each image's copy with its own generator
            image_embeds = image_embeds.repeat_interleave(repeat, dim=0)
            # diffusers' hint says one generator; randn_tensor, which it calls, takes one per row
            image_embeds = self.noise_image_embeddings(image_embeds, noise_level, generator=generator)  # type: ignore[arg-type]
        else:
            # the parent's order: noise once per source, then repeat
            image_embeds = self.noise_image_embeddings(image_embeds, noise_level, generator=generator)
            image_embeds = image_embeds.repeat_interleave(repeat, dim=0)
        if do_classifier_free_guidance:
            image_embeds = torch.cat([torch.zeros_like(image_embeds), image_embeds])
        return image_embeds

    def control_residuals(
        self,
        controls: list[torch.Tensor],
        scales: list[float],
        latents: torch.Tensor,
        latent_model_input: torch.Tensor,
        t,
        prompt_embeds: torch.Tensor,
        image_embeds: torch.Tensor,
        guess_mode: bool,
        do_classifier_free_guidance: bool,
    ) -> Residuals | None:
        """The summed residuals of the nets whose scale is non-zero this step; None if there are none."""
        # from diffusers 0.42.1: StableDiffusionControlNetPipeline.__call__ (controlnet/pipeline_controlnet.py),
        # "controlnet(s) inference", plus MultiControlNetModel.forward's sum; unCLIP's class labels added
        nets = self.control_nets()
        active = [(net, image, scale) for net, image, scale in zip(nets, controls, scales) if scale]
        if not active:
            return None
        conditional_only = guess_mode and do_classifier_free_guidance
        if conditional_only:
            sample = self.scheduler.scale_model_input(latents, t)
            text, labels = prompt_embeds.chunk(2)[1], image_embeds.chunk(2)[1]
        else:
            sample, text, labels = latent_model_input, prompt_embeds, image_embeds
        down, mid = None, None
        for net, image, scale in active:
            d, m = net(
                sample,
                t,
                encoder_hidden_states=text,
                controlnet_cond=image,
                conditioning_scale=scale,
                class_labels=labels,
                guess_mode=guess_mode,
                return_dict=False,
            )
            down = list(d) if down is None else [a + b for a, b in zip(down, d)]
            mid = m if mid is None else mid + m
        assert down is not None and mid is not None  # `active` is not empty
        if conditional_only:
            down = [torch.cat([torch.zeros_like(d), d]) for d in down]
            mid = torch.cat([torch.zeros_like(mid), mid])
        return down, mid

    # ----- the call -------------------------------------------------------------------------

    @torch.no_grad()
    def __call__(
        self,
        image: torch.Tensor | PIL.Image.Image | list[PIL.Image.Image] | None = None,
        prompt: str | list[str] | None = None,
        height: int | None = None,
        width: int | None = None,
        num_inference_steps: int = 20,
        guidance_scale: float = 10,
        negative_prompt: str | list[str] | None = None,
        num_images_per_prompt: int = 1,
        eta: float = 0.0,
        generator: torch.Generator | list[torch.Generator] | None = None,
        latents: torch.Tensor | None = None,
        prompt_embeds: torch.Tensor | None = None,
        negative_prompt_embeds: torch.Tensor | None = None,
        output_type: str | None = "pil",
        return_dict: bool = True,
        callback: Callable[[int, int, torch.Tensor], None] | None = None,
        callback_steps: int = 1,
        cross_attention_kwargs: dict[str, Any] | None = None,
        noise_level: int = 0,
        image_embeds: torch.Tensor | None = None,
        clip_skip: int | None = None,
        control_image=None,
        controlnet_conditioning_scale: float | list[float] = 1.0,
        control_guidance_start: float | list[float] = 0.0,
        control_guidance_end: float | list[float] = 1.0,
        guess_mode: bool = False,
        callback_on_step_end: (
            Callable[[Any, int, Any, dict], dict] | PipelineCallback | MultiPipelineCallbacks | None
        ) = None,
        callback_on_step_end_tensor_inputs: list[str] | None = None,
    ) -> ImagePipelineOutput | tuple:
        """Generate from CLIP image embeddings (given, or encoded from `image`), optionally under
        ControlNet control. Arguments as `StableUnCLIPImg2ImgPipeline.__call__`, plus the following.

        Args:
            control_image: image(s) for the ControlNet (PIL, array, tensor, or a list of one per
                source); with several nets, a list with one such entry per net.
            controlnet_conditioning_scale: how strongly each net's residuals are added (float or one per net).
            control_guidance_start: with control_guidance_end, the fraction of the steps during
                which each net acts (float or one per net); end 0 means the net never acts.
            guess_mode: run the nets on the conditional half only and scale their residuals from
                0.1 (shallow) to 1 (deep), as diffusers' ControlNet pipelines do.
            callback_on_step_end: called after each step as ``f(pipe, i, t, tensors)`` with the tensors
                named in `callback_on_step_end_tensor_inputs` (default ``["latents"]``; any of
                `_callback_tensor_inputs`: ``latents``, ``prompt_embeds``, ``image_embeds``, the last two
                with the unconditional half first under guidance); returns a dict that may replace
                them. A diffusers `PipelineCallback` brings its own tensor inputs. Setting
                ``pipe._interrupt = True`` in it skips the remaining steps, as in diffusers.
        """
        if isinstance(callback_on_step_end, (PipelineCallback, MultiPipelineCallbacks)):
            callback_on_step_end_tensor_inputs = callback_on_step_end.tensor_inputs
        tensor_inputs = list(callback_on_step_end_tensor_inputs or ["latents"])
        unknown = [k for k in tensor_inputs if k not in self._callback_tensor_inputs]
        if unknown:
            raise ValueError(
                f"callback_on_step_end_tensor_inputs has {unknown}; choose from {self._callback_tensor_inputs}"
            )
        nets = self.control_nets()
        self._check_control(control_image, nets)
        scales = _per_net(controlnet_conditioning_scale, len(nets), "controlnet_conditioning_scale")
        starts = _per_net(control_guidance_start, len(nets), "control_guidance_start")
        ends = _per_net(control_guidance_end, len(nets), "control_guidance_end")
        _check_windows(starts, ends)
        guess_mode = guess_mode or any(net.config["global_pool_conditions"] for net in nets)

        if prompt is None and prompt_embeds is None:
            prompt = ""
        n_sources = _count_sources(image, image_embeds)
        n_prompts = _count_prompts(prompt, prompt_embeds)
        sources = _batch_size(n_sources, n_prompts)
        total = sources * num_images_per_prompt
        if isinstance(generator, list) and len(generator) != total:
            raise ValueError(f"got {len(generator)} generators for {total} images; pass one per image")

        device = self._execution_device
        do_cfg = guidance_scale > 1.0
        controls = []
        if nets:
            controls = self.prepare_control_images(
                control_image, width, height, total, num_images_per_prompt, device, do_cfg, guess_mode
            )
            height, width = controls[0].shape[-2:]
        height = height or self.unet.config.sample_size * self.vae_scale_factor
        width = width or self.unet.config.sample_size * self.vae_scale_factor

        self.check_inputs(
            prompt=prompt,
            image=image,
            height=height,
            width=width,
            callback_steps=callback_steps,
            noise_level=noise_level,
            negative_prompt=negative_prompt,
            prompt_embeds=prompt_embeds,
            negative_prompt_embeds=negative_prompt_embeds,
            image_embeds=image_embeds,
        )

        lora_scale = cross_attention_kwargs.get("scale") if cross_attention_kwargs else None
        prompt_embeds, negative_prompt_embeds = self.encode_prompt(
            prompt=prompt,
            device=device,
            num_images_per_prompt=total // n_prompts,
            do_classifier_free_guidance=do_cfg,
            negative_prompt=negative_prompt,
            prompt_embeds=prompt_embeds,
            negative_prompt_embeds=negative_prompt_embeds,
            lora_scale=lora_scale,
            clip_skip=clip_skip,
        )
        if do_cfg:
            prompt_embeds = torch.cat([negative_prompt_embeds, prompt_embeds])

        image_embeds = self.encode_image_embeddings(
            image, image_embeds, n_sources, total, noise_level, generator, device, do_cfg
        )

        self.scheduler.set_timesteps(num_inference_steps, device=device)
        timesteps = self.scheduler.timesteps
        self._num_timesteps = len(timesteps)
        self._interrupt = False
        if latents is None:
            latents = self.prepare_latents(
                batch_size=total,
                num_channels_latents=self.unet.config.in_channels,
                height=height,
                width=width,
                dtype=prompt_embeds.dtype,
                device=device,
                generator=generator,
            )
        extra_step_kwargs = self.prepare_extra_step_kwargs(generator, eta)

        # from diffusers 0.42.1: StableUnCLIPImg2ImgPipeline.__call__ (pipeline_stable_unclip_img2img.py),
        # the denoising loop, with the ControlNet step of StableDiffusionControlNetPipeline.__call__
        # (controlnet/pipeline_controlnet.py) and its callback_on_step_end handling
        for i, t in enumerate(self.progress_bar(timesteps)):
            if self.interrupt:
                continue
            latent_model_input = torch.cat([latents] * 2) if do_cfg else latents
            latent_model_input = self.scheduler.scale_model_input(latent_model_input, t)

            step_scales = [
                scale * _acts(i, len(timesteps), start, end) for scale, start, end in zip(scales, starts, ends)
            ]
            residuals = self.control_residuals(
                controls,
                step_scales,
                latents,
                latent_model_input,
                t,
                prompt_embeds,
                image_embeds,
                guess_mode,
                do_cfg,
            )
            noise_pred = self._predict_noise(
                latent_model_input, t, prompt_embeds, image_embeds, cross_attention_kwargs, residuals
            )
            if do_cfg:
                noise_pred_uncond, noise_pred_text = noise_pred.chunk(2)
                noise_pred = noise_pred_uncond + guidance_scale * (noise_pred_text - noise_pred_uncond)

            latents = self.scheduler.step(noise_pred, t, latents, **extra_step_kwargs, return_dict=False)[0]

            if callback is not None and i % callback_steps == 0:
                callback(i // getattr(self.scheduler, "order", 1), t, latents)
            if callback_on_step_end is not None:
                tensors = {"latents": latents, "prompt_embeds": prompt_embeds, "image_embeds": image_embeds}
                returned = callback_on_step_end(self, i, t, {k: tensors[k] for k in tensor_inputs}) or {}
                latents = returned.get("latents", latents)
                prompt_embeds = returned.get("prompt_embeds", prompt_embeds)
                image_embeds = returned.get("image_embeds", image_embeds)

        # from diffusers 0.42.1: StableUnCLIPImg2ImgPipeline.__call__, "9. Post-processing"
        if output_type == "latent":
            images = latents
        else:
            images = self.vae.decode(latents / self.vae.config.scaling_factor, return_dict=False)[0]
        images = self.image_processor.postprocess(images, output_type=output_type)
        self.maybe_free_model_hooks()

        if not return_dict:
            return (images,)
        return ImagePipelineOutput(images=images)

    def _predict_noise(
        self, latent_model_input, t, prompt_embeds, image_embeds, cross_attention_kwargs, residuals: Residuals | None
    ) -> torch.Tensor:
        kwargs = {}
        if residuals is not None:
            # only passed when there is control, so an uncontrolled step is the parent's call exactly
            kwargs = {
                "down_block_additional_residuals": residuals[0],
                "mid_block_additional_residual": residuals[1],
            }
        return self.unet(
            latent_model_input,
            t,
            encoder_hidden_states=prompt_embeds,
            class_labels=image_embeds,
            cross_attention_kwargs=cross_attention_kwargs,
            return_dict=False,
            **kwargs,
        )[0]

    def _check_control(self, control_image, nets: list[ControlNetModel]) -> None:
        if nets and control_image is None:
            raise ValueError("this pipeline has a controlnet: pass control_image (or load it with controlnet=None)")
        if not nets and control_image is not None:
            raise ValueError("control_image given, but the pipeline has no controlnet; load one with controlnet=...")


def _per_net(value, n: int, name: str) -> list[float]:
    if isinstance(value, (list, tuple)):
        if len(value) != n:
            raise ValueError(f"{name} has {len(value)} values for {n} ControlNets")
        return [float(v) for v in value]
    return [float(value)] * n


def _check_windows(starts: list[float], ends: list[float]) -> None:
    for start, end in zip(starts, ends):
        if not 0.0 <= start <= end <= 1.0:
            raise ValueError(f"control guidance window [{start}, {end}] must satisfy 0 <= start <= end <= 1")


def _acts(i: int, steps: int, start: float, end: float) -> float:
    """1.0 when step i of `steps` lies wholly inside the net's window [start, end], else 0.0."""
    # from diffusers 0.42.1: StableDiffusionControlNetPipeline.__call__'s controlnet_keep
    return 0.0 if i / steps < start or (i + 1) / steps > end else 1.0


def _count_sources(image, image_embeds: torch.Tensor | None) -> int:
    if image_embeds is not None:
        return 1 if image_embeds.ndim == 1 else image_embeds.shape[0]
    if isinstance(image, list):
        return len(image)
    if isinstance(image, torch.Tensor) and image.ndim == 4:
        return image.shape[0]
    return 1


def _count_prompts(prompt, prompt_embeds: torch.Tensor | None) -> int:
    if isinstance(prompt, list):
        return len(prompt)
    if prompt is None and prompt_embeds is not None:
        return prompt_embeds.shape[0]
    return 1


def _batch_size(n_sources: int, n_prompts: int) -> int:
    """Sources in the batch: a single source or prompt is shared by all the others."""
    size = max(n_sources, n_prompts)
    if n_sources not in (1, size) or n_prompts not in (1, size):
        raise ValueError(f"got {n_sources} source images but {n_prompts} prompts; pass one prompt or one per source")
    return size


# diffusers' DiffusionPipeline.from_pretrained looks the class named in model_index.json up in the
# diffusers namespace: naming doge's class there lets it restore a saved doge pipeline.
if getattr(diffusers, StableUnCLIPControlNetImg2ImgPipeline.__name__, None) is None:
    setattr(diffusers, StableUnCLIPControlNetImg2ImgPipeline.__name__, StableUnCLIPControlNetImg2ImgPipeline)
