"""StableUnCLIPControlNetImg2ImgPipeline on the tiny random model: 2 steps, 64 px, CPU."""

import numpy as np
import pytest
import torch
from diffusers import ControlNetModel, StableUnCLIPImg2ImgPipeline
from diffusers.models import MultiControlNetModel
from helpers import UNCLIP_COMPONENTS
from PIL import Image

from doge.rendering.pipeline import StableUnCLIPControlNetImg2ImgPipeline
from doge.testing import EMBED_DIM, activate_controlnet, build_tiny_lora

STEPS = 2
SIZE = 64


@pytest.fixture(scope="session")
def tiny_path(tiny_model):
    return tiny_model


@pytest.fixture(scope="session")
def base(tiny_path):
    pipe = StableUnCLIPImg2ImgPipeline.from_pretrained(tiny_path)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def active_controlnet(tiny_path, seed: int) -> ControlNetModel:
    return activate_controlnet(ControlNetModel.from_pretrained(tiny_path / "controlnet"), seed)


@pytest.fixture(scope="session")
def net_a(tiny_path):
    return active_controlnet(tiny_path, seed=1)


@pytest.fixture(scope="session")
def net_b(tiny_path):
    return active_controlnet(tiny_path, seed=2)


def with_control(base, controlnet) -> StableUnCLIPControlNetImg2ImgPipeline:
    pipe = StableUnCLIPControlNetImg2ImgPipeline(**base.components, controlnet=controlnet)
    pipe.set_progress_bar_config(disable=True)
    return pipe


def embeds(n: int, seed: int = 0) -> torch.Tensor:
    return torch.randn(n, EMBED_DIM, generator=torch.Generator().manual_seed(seed))


def control_image(seed: int) -> Image.Image:
    pixels = np.random.RandomState(seed).randint(0, 256, (SIZE, SIZE, 3), dtype=np.uint8)
    return Image.fromarray(pixels)


def render(pipe, image_embeds, seed=0, **kwargs) -> np.ndarray:
    generator = kwargs.pop("generator", None) or torch.Generator().manual_seed(seed)
    out = pipe(
        image_embeds=image_embeds,
        generator=generator,
        num_inference_steps=STEPS,
        height=SIZE,
        width=SIZE,
        output_type="np",
        **kwargs,
    )
    return out.images


def generators(seeds) -> list[torch.Generator]:
    return [torch.Generator().manual_seed(s) for s in seeds]


@pytest.fixture(scope="session")
def plain_images(base):
    """The parent pipeline's render that every uncontrolled render must reproduce."""
    return render(base, embeds(1))


def test_loaded_without_controlnet_equals_unclip(tiny_path, plain_images):
    pipe = StableUnCLIPControlNetImg2ImgPipeline.from_pretrained(tiny_path)
    pipe.set_progress_bar_config(disable=True)
    assert pipe.controlnet is None
    np.testing.assert_array_equal(render(pipe, embeds(1)), plain_images)


def test_fresh_controlnet_changes_nothing(base, tiny_path, plain_images):
    # built from a config, its zero convolutions are zero: control adds zero residuals
    pipe = with_control(base, ControlNetModel.from_pretrained(tiny_path / "controlnet"))
    np.testing.assert_array_equal(render(pipe, embeds(1), control_image=control_image(0)), plain_images)


def test_conditioning_scale_zero_equals_unclip(base, net_a, plain_images):
    pipe = with_control(base, net_a)
    out = render(pipe, embeds(1), control_image=control_image(0), controlnet_conditioning_scale=0.0)
    np.testing.assert_array_equal(out, plain_images)


def test_active_controlnet_follows_the_control_image(base, net_a, plain_images):
    pipe = with_control(base, net_a)
    first = render(pipe, embeds(1), control_image=control_image(0))
    second = render(pipe, embeds(1), control_image=control_image(1))
    assert np.abs(first - plain_images).max() > 1e-3
    assert np.abs(first - second).max() > 1e-3
    np.testing.assert_array_equal(render(pipe, embeds(1), control_image=control_image(0)), first)


def test_multi_controlnet_per_net_scales(base, net_a, net_b, plain_images):
    multi = with_control(base, [net_a, net_b])
    assert isinstance(multi.controlnet, MultiControlNetModel)
    images = [control_image(0), control_image(1)]

    both = render(multi, embeds(1), control_image=images, controlnet_conditioning_scale=[1.0, 0.5])
    assert both.shape == (1, SIZE, SIZE, 3)
    assert np.abs(both - plain_images).max() > 1e-3

    # second net at scale 0: exactly the first net alone
    first_only = render(multi, embeds(1), control_image=images, controlnet_conditioning_scale=[1.0, 0.0])
    alone = render(with_control(base, net_a), embeds(1), control_image=images[0])
    np.testing.assert_allclose(first_only, alone, atol=1e-6)
    assert np.abs(both - first_only).max() > 1e-3


def test_guidance_end_zero_is_no_control(base, net_a, net_b, plain_images):
    multi = with_control(base, [net_a, net_b])
    images = [control_image(0), control_image(1)]
    out = render(multi, embeds(1), control_image=images, control_guidance_end=0.0)
    np.testing.assert_array_equal(out, plain_images)


def test_guidance_window_limits_the_steps(base, net_a, plain_images):
    pipe = with_control(base, net_a)
    full = render(pipe, embeds(1), control_image=control_image(0))
    second_half = render(pipe, embeds(1), control_image=control_image(0), control_guidance_start=0.5)
    assert np.abs(second_half - plain_images).max() > 1e-3
    assert np.abs(second_half - full).max() > 1e-3


def test_batch_gives_each_source_the_images_it_gets_alone(base, net_a):
    pipe = with_control(base, net_a)
    sources, per_source = embeds(2, seed=3), 2
    controls = [control_image(0), control_image(1)]
    seeds = [10, 11, 20, 21]  # image b*N + k belongs to source b

    batch = render(pipe, sources, generator=generators(seeds), control_image=controls, num_images_per_prompt=per_source)
    assert batch.shape == (4, SIZE, SIZE, 3)
    for b in range(2):
        alone = render(
            pipe,
            sources[b : b + 1],
            generator=generators(seeds[2 * b : 2 * b + 2]),
            control_image=controls[b],
            num_images_per_prompt=per_source,
        )
        np.testing.assert_allclose(batch[2 * b : 2 * b + 2], alone, atol=1e-5)
    assert np.abs(batch[0] - batch[1]).max() > 1e-3  # own noise per image
    assert np.abs(batch[0] - batch[2]).max() > 1e-3


def test_batch_takes_a_prompt_per_source(base, net_a):
    pipe = with_control(base, net_a)
    out = render(
        pipe, embeds(2), generator=generators([1, 2]), control_image=control_image(0), prompt=["a photo", "a painting"]
    )
    assert out.shape == (2, SIZE, SIZE, 3)


def test_controlnet_sees_the_unets_conditioning(base, net_a):
    pipe = with_control(base, net_a)
    calls = {"unet": [], "controlnet": []}

    def spy(name):
        return lambda module, args, kwargs: calls[name].append(kwargs)

    hooks = [
        base.unet.register_forward_pre_hook(spy("unet"), with_kwargs=True),
        net_a.register_forward_pre_hook(spy("controlnet"), with_kwargs=True),
    ]
    try:
        render(pipe, embeds(1), control_image=control_image(0), prompt="a painting")
    finally:
        for hook in hooks:
            hook.remove()
    assert len(calls["unet"]) == len(calls["controlnet"]) == STEPS
    for unet_kw, net_kw in zip(calls["unet"], calls["controlnet"]):
        torch.testing.assert_close(net_kw["class_labels"], unet_kw["class_labels"])
        torch.testing.assert_close(net_kw["encoder_hidden_states"], unet_kw["encoder_hidden_states"])


def test_guess_mode_differs_when_control_is_active(base, net_a):
    pipe = with_control(base, net_a)
    normal = render(pipe, embeds(1), control_image=control_image(0))
    guessed = render(pipe, embeds(1), control_image=control_image(0), guess_mode=True)
    assert np.abs(normal - guessed).max() > 1e-3


def test_guess_mode_runs_the_controlnet_on_the_conditional_half_only(base, net_a):
    pipe = with_control(base, net_a)
    seen = []
    hook = net_a.register_forward_pre_hook(lambda module, args: seen.append(args[0].shape[0]))
    try:
        render(pipe, embeds(1), control_image=control_image(0), num_images_per_prompt=2)
        render(pipe, embeds(1), control_image=control_image(0), num_images_per_prompt=2, guess_mode=True)
    finally:
        hook.remove()
    assert seen == [4] * STEPS + [2] * STEPS  # guidance doubles the batch; guess mode does not


def test_save_and_load_keep_the_controlnet(base, net_a, tmp_path):
    with_control(base, net_a).save_pretrained(tmp_path / "pipe")
    loaded = StableUnCLIPControlNetImg2ImgPipeline.from_pretrained(tmp_path / "pipe")
    assert isinstance(loaded.controlnet, ControlNetModel)
    saved, original = loaded.controlnet.controlnet_mid_block.weight, net_a.controlnet_mid_block.weight
    torch.testing.assert_close(saved, original)


def test_control_image_without_controlnet_is_refused(base):
    pipe = with_control(base, None)
    with pytest.raises(ValueError, match="no controlnet"):
        render(pipe, embeds(1), control_image=control_image(0))


def test_controlnet_without_control_image_is_refused(base, net_a):
    with pytest.raises(ValueError, match="pass control_image"):
        render(with_control(base, net_a), embeds(1))


def test_wrong_number_of_control_images_is_refused(base, net_a):
    pipe = with_control(base, net_a)
    with pytest.raises(ValueError, match="one per source"):
        render(
            pipe,
            embeds(2),
            generator=generators([1, 2]),
            control_image=[control_image(0), control_image(1), control_image(2)],
        )


# ----- LoRA -----------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def lora_dir(tiny_path, tmp_path_factory):
    """A random non-zero LoRA on the tiny UNet's attention projections, saved the diffusers way."""
    pytest.importorskip("peft")
    return build_tiny_lora(tiny_path, tmp_path_factory.mktemp("lora"))


def test_lora_scale_zero_equals_no_lora(tiny_path, net_a, lora_dir):
    pipe = StableUnCLIPControlNetImg2ImgPipeline.from_pretrained(tiny_path, controlnet=net_a)
    pipe.set_progress_bar_config(disable=True)
    without = render(pipe, embeds(1), control_image=control_image(0))

    pipe.load_lora_weights(lora_dir)
    off = render(pipe, embeds(1), control_image=control_image(0), cross_attention_kwargs={"scale": 0.0})
    on = render(pipe, embeds(1), control_image=control_image(0), cross_attention_kwargs={"scale": 1.0})
    np.testing.assert_allclose(off, without, atol=1e-6)
    assert np.abs(on - without).max() > 1e-3


# ----- diffusers' rules: from_pipe, components, save/load, callbacks, outputs -----------------


def test_from_pipe_stock_to_doge_shares_the_modules(base, net_a, caplog):
    pipe = StableUnCLIPControlNetImg2ImgPipeline.from_pipe(base, controlnet=net_a)
    pipe.set_progress_bar_config(disable=True)
    assert type(pipe) is StableUnCLIPControlNetImg2ImgPipeline
    assert "not switched over" not in caplog.text
    for name in UNCLIP_COMPONENTS:
        assert getattr(pipe, name) is getattr(base, name), name
    assert pipe.controlnet is net_a
    built = render(with_control(base, net_a), embeds(1), control_image=control_image(0))
    np.testing.assert_array_equal(render(pipe, embeds(1), control_image=control_image(0)), built)


def test_from_pipe_doge_to_stock_shares_the_modules_and_drops_the_controlnet(base, net_a, plain_images):
    doge_pipe = with_control(base, net_a)
    stock = StableUnCLIPImg2ImgPipeline.from_pipe(doge_pipe)
    stock.set_progress_bar_config(disable=True)
    assert type(stock) is StableUnCLIPImg2ImgPipeline
    for name in UNCLIP_COMPONENTS:
        assert getattr(stock, name) is getattr(base, name), name
    assert "controlnet" not in stock.components
    np.testing.assert_array_equal(render(stock, embeds(1)), plain_images)


@pytest.mark.parametrize("nets", [1, 2])
def test_components_rebuild_the_pipeline(base, net_a, net_b, nets):
    pipe = with_control(base, net_a if nets == 1 else [net_a, net_b])
    again = type(pipe)(**pipe.components)
    assert set(again.components) == set(UNCLIP_COMPONENTS) | {"controlnet"}
    for name, module in pipe.components.items():
        assert getattr(again, name) is module, name
    # the stock class has no controlnet parameter: from_pipe is the way back (see above)
    with pytest.raises(TypeError, match="controlnet"):
        StableUnCLIPImg2ImgPipeline(**pipe.components)


@pytest.mark.parametrize("nets", [1, 2])
def test_diffusion_pipeline_from_pretrained_restores_class_and_controlnets(base, net_a, net_b, nets, tmp_path):
    from diffusers import DiffusionPipeline

    given = [net_a, net_b][:nets]
    pipe = with_control(base, given[0] if nets == 1 else given)
    pipe.save_pretrained(tmp_path / "pipe")
    loaded = DiffusionPipeline.from_pretrained(tmp_path / "pipe")
    loaded.set_progress_bar_config(disable=True)
    assert type(loaded) is StableUnCLIPControlNetImg2ImgPipeline
    assert loaded.control_nets() is not given and len(loaded.control_nets()) == nets
    for saved, original in zip(loaded.control_nets(), given):
        assert saved is not original
        torch.testing.assert_close(saved.controlnet_mid_block.weight, original.controlnet_mid_block.weight)
    images = [control_image(0), control_image(1)][:nets]
    control = images[0] if nets == 1 else images
    np.testing.assert_array_equal(
        render(loaded, embeds(1), control_image=control), render(pipe, embeds(1), control_image=control)
    )


def test_callback_on_step_end_sees_and_replaces_the_tensors_it_asks_for(base, net_a):
    pipe = with_control(base, net_a)
    seen = []

    def look(p, i, t, tensors):
        seen.append((i, {k: tuple(v.shape) for k, v in tensors.items()}, p.num_timesteps))
        return {}

    inputs = ["latents", "prompt_embeds", "image_embeds"]
    plain = render(
        pipe,
        embeds(1),
        control_image=control_image(0),
        callback_on_step_end=look,
        callback_on_step_end_tensor_inputs=inputs,
    )
    assert [i for i, _, _ in seen] == list(range(STEPS))
    shapes = seen[0][1]
    assert set(shapes) == set(inputs)
    latent = SIZE // pipe.vae_scale_factor
    assert shapes["latents"] == (1, pipe.unet.config.in_channels, latent, latent)
    assert shapes["prompt_embeds"][0] == shapes["image_embeds"][0] == 2  # guidance: unconditional half first
    assert all(steps == STEPS for _, _, steps in seen)
    # asking for nothing gives the latents, as diffusers' default does
    seen.clear()
    render(pipe, embeds(1), control_image=control_image(0), callback_on_step_end=look)
    assert set(seen[0][1]) == {"latents"}

    # what the callback returns replaces the latents
    def zero_last(p, i, t, tensors):
        return {"latents": torch.zeros_like(tensors["latents"])} if i == STEPS - 1 else {}

    zeroed = render(pipe, embeds(1), control_image=control_image(0), callback_on_step_end=zero_last)
    assert np.abs(zeroed - plain).max() > 1e-3
    with torch.no_grad():
        decoded = pipe.vae.decode(torch.zeros(1, pipe.unet.config.in_channels, latent, latent), return_dict=False)[0]
    expected = pipe.image_processor.postprocess(decoded, output_type="np")
    np.testing.assert_allclose(zeroed, expected, atol=1e-6)

    with pytest.raises(ValueError, match="choose from"):
        render(
            pipe,
            embeds(1),
            control_image=control_image(0),
            callback_on_step_end=look,
            callback_on_step_end_tensor_inputs=["noise_pred"],
        )


def test_interrupt_skips_the_remaining_steps(base, net_a):
    pipe = with_control(base, net_a)
    calls = []
    hook = pipe.unet.register_forward_pre_hook(lambda module, args: calls.append(1))

    def stop(p, i, t, tensors):
        p._interrupt = True
        return {}

    try:
        render(pipe, embeds(1), control_image=control_image(0), callback_on_step_end=stop)
    finally:
        hook.remove()
    assert len(calls) == 1 and pipe.interrupt


def test_output_types_and_return_dict(base, net_a):
    pipe = with_control(base, net_a)

    def call(**kwargs):
        return pipe(
            image_embeds=embeds(1),
            generator=torch.Generator().manual_seed(0),
            num_inference_steps=STEPS,
            height=SIZE,
            width=SIZE,
            control_image=control_image(0),
            **kwargs,
        )

    (as_np,) = call(output_type="np", return_dict=False)  # a tuple holding the images
    as_pt = call(output_type="pt").images
    as_pil = call(output_type="pil").images
    latents = call(output_type="latent").images
    assert as_np.shape == (1, SIZE, SIZE, 3) and as_np.dtype == np.float32
    assert isinstance(as_pt, torch.Tensor) and as_pt.shape == (1, 3, SIZE, SIZE)
    np.testing.assert_array_equal(as_pt.permute(0, 2, 3, 1).numpy(), as_np)
    assert len(as_pil) == 1 and as_pil[0].size == (SIZE, SIZE)
    np.testing.assert_array_equal(np.asarray(as_pil[0]), (as_np[0] * 255).round().astype(np.uint8))
    latent = SIZE // pipe.vae_scale_factor
    assert latents.shape == (1, pipe.unet.config.in_channels, latent, latent)
    with torch.no_grad():
        decoded = pipe.vae.decode(latents / pipe.vae.config.scaling_factor, return_dict=False)[0]
    np.testing.assert_allclose(pipe.image_processor.postprocess(decoded, output_type="np"), as_np, atol=1e-6)


def test_num_images_per_prompt_with_several_controlnets(base, net_a, net_b):
    multi = with_control(base, [net_a, net_b])
    sources = embeds(2, seed=4)
    controls = [[control_image(0), control_image(1)], [control_image(2), control_image(3)]]  # per net, per source
    seeds = [30, 31, 40, 41]
    batch = render(multi, sources, generator=generators(seeds), control_image=controls, num_images_per_prompt=2)
    assert batch.shape == (4, SIZE, SIZE, 3)
    for b in range(2):
        alone = render(
            multi,
            sources[b : b + 1],
            generator=generators(seeds[2 * b : 2 * b + 2]),
            control_image=[controls[0][b], controls[1][b]],
            num_images_per_prompt=2,
        )
        np.testing.assert_allclose(batch[2 * b : 2 * b + 2], alone, atol=1e-5)
    assert np.abs(batch[0] - batch[1]).max() > 1e-3
    assert np.abs(batch[0] - batch[2]).max() > 1e-3
