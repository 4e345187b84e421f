r"""The toy GAN, trained live: a trainer you step by hand and a widget that drives it.

:class:`ToyGANTrainer` holds a whole run on the ring of 8 Gaussians
(:mod:`gmlib.gan_toy`): the settings, the two networks and their Adam optimizers, a
seeded data sampler (a fresh batch for each of the ``k`` discriminator steps), the step
counter and the history. :meth:`~ToyGANTrainer.train_chunk` runs ``chunk`` rounds of
:func:`gmlib.gan.gan_step`; :meth:`~ToyGANTrainer.figure` draws the samples over the
discriminator's decision surface $D(x) = \sigma(\ell(x))$ beside the losses and the
mean $D(x)$, $D(G(z))$ against the step. :class:`ToyGANExplorer` puts sliders and
buttons on it (core ipywidgets with the same API in 7.7, Colab's, and 8; imported only
when a widget is built): in a kernel, Train runs chunk after chunk as an asyncio task
that lets the kernel handle Pause and the sliders between chunks. :func:`run_toy_gan`
trains headless and keeps small snapshots for a precomputed slider in the static book.
Taught in ``notebooks/04_gan.ipynb``, "A toy GAN, trained live".
"""

from __future__ import annotations

import asyncio
import base64
import io
import math
import time
from functools import partial

import torch

from . import gan_toy
from .checks import learning_rate, non_negative_int, positive_int
from .gan import GENERATOR_LOSSES, gan_step
from .train import adam

STEP_KEYS = ("loss_d", "loss_g", "d_real", "d_fake")
BOX = 3.0  # the figure and the decision surface cover [-BOX, BOX]^2
N_SHOW = 1000  # generated points drawn and scored after every chunk


def _check_loss(value, name: str) -> str:
    if value not in GENERATOR_LOSSES:
        choices = ", ".join(map(repr, GENERATOR_LOSSES))
        raise ValueError(f"unknown {name} {value!r}; expected one of {choices}")
    return value


_INTS = ("k", "noise_dim", "batch_size", "chunk", "total_steps", "hidden", "layers")
_CHECKS = dict.fromkeys(_INTS, positive_int)
_CHECKS.update(lr_g=learning_rate, lr_d=learning_rate)
_CHECKS.update(loss=_check_loss, seed=non_negative_int)
_BUILD = ("noise_dim", "seed", "hidden", "layers")  # these take effect on reset()


class ToyGANTrainer:
    """A GAN on the ring of 8 Gaussians, trained ``chunk`` generator steps at a time.

    Settings are attributes, checked when set (``trainer.k = 0`` raises). Learning
    rates go straight into the optimizers; ``k``, ``loss``, ``batch_size``, ``chunk``
    and ``total_steps`` act from the next chunk; ``noise_dim``, ``seed``, ``hidden``
    and ``layers`` only on :meth:`reset` (:attr:`pending_reset` lists them until then).
    ``history`` holds ``loss_d``, ``loss_g``, ``d_real``, ``d_fake`` per generator
    step; ``coverage`` holds ``step``, ``modes``, ``quality`` and ``distance``
    (:func:`gmlib.gan_toy.mode_coverage` of 1000 samples from fixed noise) and
    ``spread`` (the samples' total standard deviation, 2.0 for the data: near 0 when
    the generator has collapsed to a point) at step 0 and after every chunk.
    """

    def __init__(
        self,
        *,
        k: int = 1,
        lr_g: float = 1e-3,
        lr_d: float = 1e-3,
        loss: str = "non-saturating",
        noise_dim: int = 2,
        batch_size: int = 256,
        chunk: int = 100,
        total_steps: int = 3000,
        seed: int = 0,
        hidden: int = 128,
        layers: int = 3,
    ):
        settings = {name: value for name, value in locals().items() if name in _CHECKS}
        self.opt_g = self.opt_d = None
        self.set(**settings)
        self.centers = gan_toy.ring_centers(8, 2.0)
        self.reset()

    def __setattr__(self, name, value):
        if name in _CHECKS:
            value = _CHECKS[name](value, name)
        object.__setattr__(self, name, value)
        if name in ("lr_g", "lr_d") and getattr(self, "opt_g", None) is not None:
            for opt, lr in ((self.opt_g, self.lr_g), (self.opt_d, self.lr_d)):
                for group in opt.param_groups:
                    group["lr"] = lr

    def set(self, **settings) -> None:
        """Change several settings; all are checked before any is applied."""
        for name, value in settings.items():
            if name not in _CHECKS:
                raise TypeError(f"unknown setting {name!r}; expected {list(_CHECKS)}")
            _CHECKS[name](value, name)
        for name, value in settings.items():
            setattr(self, name, value)

    @property
    def pending_reset(self) -> list[str]:
        """Settings changed since the last :meth:`reset`, which only it applies."""
        return [n for n in _BUILD if getattr(self, n) != self._built[n]]

    def reset(self) -> None:
        """New networks, optimizers, samplers and history from the settings and seed."""
        size = dict(hidden=self.hidden, layers=self.layers)
        with torch.random.fork_rng(devices=[]):  # weights from the seed alone
            torch.manual_seed(self.seed)
            self.generator = gan_toy.ToyGenerator(noise_dim=self.noise_dim, **size)
            self.discriminator = gan_toy.ToyDiscriminator(**size)
        kw = dict(device=torch.device("cpu"), betas=(0.5, 0.999))
        self.opt_g = adam(self.generator.parameters(), lr=self.lr_g, **kw)
        self.opt_d = adam(self.discriminator.parameters(), lr=self.lr_d, **kw)
        self._data = torch.Generator().manual_seed(self.seed)
        self._noise = torch.Generator().manual_seed(self.seed + 1)
        fixed = torch.Generator().manual_seed(self.seed + 2)
        self.z_show = torch.randn(N_SHOW, self.noise_dim, generator=fixed)
        self.real_show = gan_toy.ring_of_gaussians(N_SHOW, generator=fixed)
        self._built = {n: getattr(self, n) for n in _BUILD}
        self.step, self.seconds, self.snapshots = 0, 0.0, []
        self.history = {key: [] for key in STEP_KEYS}
        keys = ("step", "modes", "quality", "distance", "spread")
        self.coverage = {key: [] for key in keys}
        self._score()

    @property
    def done(self) -> bool:
        return self.step >= self.total_steps

    @torch.no_grad()
    def samples(self) -> torch.Tensor:
        """``(1000, 2)``: the generator applied to the fixed noise ``z_show``."""
        return self.generator(self.z_show)

    def _score(self) -> None:
        x = self.samples()
        cov = gan_toy.mode_coverage(x, self.centers)
        cov.update(step=self.step, spread=float(x.std(0).norm()))
        for key, value in cov.items():
            self.coverage[key].append(value)

    def train_chunk(self) -> float:
        """Run ``chunk`` generator steps (fewer at ``total_steps``), each after ``k``
        discriminator steps on fresh real batches; returns the seconds taken.

        On one CPU thread: networks this small train about 1.4x faster on two threads
        of an idle 2-core machine, but 4 to 15 times slower when another process keeps
        one of the cores busy.
        """
        rounds = min(self.chunk, self.total_steps - self.step)
        if rounds <= 0:
            return 0.0
        start, threads = time.perf_counter(), torch.get_num_threads()
        nets, opts = (self.generator, self.discriminator), (self.opt_g, self.opt_d)
        kw = dict(latent_dim=self.generator.latent_dim, loss=self.loss)
        sample, records = gan_toy.ring_of_gaussians, []
        torch.set_num_threads(1)
        try:
            for _ in range(rounds):
                real = [
                    sample(self.batch_size, generator=self._data) for _ in range(self.k)
                ]
                records.append(gan_step(*nets, *opts, real, **kw, noise=self._noise))
        finally:
            torch.set_num_threads(threads)
        for key in STEP_KEYS:  # one conversion per chunk
            self.history[key] += torch.stack([r[key] for r in records]).tolist()
        self.step += rounds
        self._score()
        self.seconds = time.perf_counter() - start
        return self.seconds

    @torch.no_grad()
    def snapshot(self, *, grid: int = 100, n: int = N_SHOW) -> dict:
        """What the figure shows: ``step``, the first ``n`` fixed-noise ``samples``
        ``(n, 2)``, ``surface`` = D on a ``grid`` x ``grid`` lattice over [-3, 3]^2
        ``(grid, grid)`` (rows along y), and the last ``modes`` and ``quality``."""
        if positive_int(n, "n") > N_SHOW:
            raise ValueError(f"n must be at most {N_SHOW} (the fixed noise), got {n}")
        axis = torch.linspace(-BOX, BOX, positive_int(grid, "grid"))
        yy, xx = torch.meshgrid(axis, axis, indexing="ij")
        logits = self.discriminator(torch.stack([xx.flatten(), yy.flatten()], 1))
        return {
            "step": self.step,
            "samples": self.samples()[:n].clone(),
            "surface": torch.sigmoid(logits).reshape(grid, grid),
            "modes": self.coverage["modes"][-1],
            "quality": self.coverage["quality"][-1],
        }

    def figure(self, snapshot: dict | None = None):
        """Samples over the decision surface, the losses, and D(x), D(G(z)): now, or
        at ``snapshot`` (curves up to its step). Not managed by pyplot: nothing to
        close, and nothing shown unless displayed."""
        from matplotlib.figure import Figure

        snap = self.snapshot() if snapshot is None else snapshot
        step, surface = snap["step"], snap["surface"].numpy()
        fig = Figure(figsize=(13, 3.8), dpi=80)  # a fixed layout draws fastest
        ax, ax_loss, ax_d = fig.subplots(1, 3, width_ratios=(1.15, 1, 1))
        fig.subplots_adjust(left=0.04, right=0.99, bottom=0.13, top=0.88, wspace=0.25)
        axis = torch.linspace(-BOX, BOX, len(surface)).numpy()
        levels = [i / 10 for i in range(11)]
        cs = ax.contourf(axis, axis, surface, levels=levels, cmap="RdBu", alpha=0.75)
        fig.colorbar(cs, ax=ax, label="D(x)", ticks=[0, 0.5, 1])
        real, fake = self.real_show.numpy(), snap["samples"].numpy()
        ax.scatter(*real.T, s=10, c="#ffb000", alpha=0.5, lw=0, label="real")
        ax.scatter(*fake.T, s=4, c="black", lw=0, label="G(z)")
        ax.set(xlim=(-BOX, BOX), ylim=(-BOX, BOX), aspect="equal")
        ax.legend(loc="upper right", fontsize=7, markerscale=2)
        for key, label, a in zip(
            STEP_KEYS,
            ("D loss", "G loss", "D(x)", "D(G(z))"),
            [ax_loss] * 2 + [ax_d] * 2,
        ):
            a.plot(range(1, step + 1), self.history[key][:step], lw=0.8, label=label)
        ax_d.axhline(0.5, color="gray", ls=":", lw=0.8)
        ax_d.set_ylim(-0.02, 1.02)
        for a, label in ((ax_loss, "loss"), (ax_d, "mean probability")):
            a.set(xlabel="generator step", ylabel=label, xlim=(0, max(step, 1)))
            a.legend(fontsize=8, loc="upper right")
            a.grid(alpha=0.3)
        fig.suptitle(
            f"step {step}: {snap['modes']} of 8 modes covered, "
            f"{snap['quality']:.0%} of samples within 3 std of a mode"
        )
        return fig


def run_toy_gan(
    steps: int, *, every: int = 100, grid: int = 60, n: int = 500, **settings
) -> ToyGANTrainer:
    """Train headless for ``steps`` generator steps; ``trainer.snapshots`` gets a
    :meth:`~ToyGANTrainer.snapshot` (``grid`` x ``grid`` surface, ``n`` samples) at
    step 0 and every ``every`` steps, for :func:`gmlib.viz.static_slider` frames
    ``[trainer.figure(s) for s in trainer.snapshots]``."""
    steps, every = positive_int(steps, "steps"), positive_int(every, "every")
    for name, instead in (("chunk", "every"), ("total_steps", "steps")):
        if name in settings:
            raise TypeError(f"run_toy_gan sets {name} from {instead}: pass {instead}=")
    trainer = ToyGANTrainer(**settings, chunk=every, total_steps=steps)
    trainer.snapshots.append(trainer.snapshot(grid=grid, n=n))
    while not trainer.done:
        trainer.train_chunk()
        trainer.snapshots.append(trainer.snapshot(grid=grid, n=n))
    return trainer


def _running_loop() -> asyncio.AbstractEventLoop | None:
    """The asyncio loop running this call: ipykernel >= 6 (Jupyter, Colab) runs cells
    and widget callbacks inside one; None in plain Python and in tests."""
    try:
        return asyncio.get_running_loop()
    except RuntimeError:
        return None


class ToyGANExplorer:
    """Sliders and Train / Pause / Reset buttons on a :class:`ToyGANTrainer`.

    ``controls`` maps setting names to their widgets, ``buttons`` holds ``train``,
    ``pause`` and ``reset``, ``widget`` is the whole VBox (displaying the explorer
    shows it). In a kernel, Train starts an asyncio task that trains chunk after
    chunk until done or paused; with no running loop it trains one chunk.
    """

    def __init__(self, trainer: ToyGANTrainer | None = None, **settings):
        import ipywidgets as w

        if trainer is not None and settings:
            raise TypeError("give a trainer or settings for a new one, not both")
        self.trainer = t = trainer if trainer is not None else ToyGANTrainer(**settings)
        self._paused, self._task, self.redraws = True, None, 0

        def ints(name, low, high, label, step=1):  # widened to show any valid value
            value = getattr(t, name)
            low, high = min(low, value), max(high, value)
            return w.IntSlider(value, min=low, max=high, step=step, description=label)

        def lr(name, label):  # exponents of 10
            value, kw = getattr(t, name), dict(step=0.1, readout_format=".1e")
            exp = math.log10(value)
            low, high = min(-5, math.floor(exp)), max(-2, math.ceil(exp))
            return w.FloatLogSlider(value, min=low, max=high, description=label, **kw)

        self.controls = {
            "k": ints("k", 1, 5, "k (D steps)"),
            "loss": w.Dropdown(
                options=GENERATOR_LOSSES, value=t.loss, description="G loss"
            ),
            "noise_dim": ints("noise_dim", 1, 16, "noise dim"),
            "lr_g": lr("lr_g", "lr G"),
            "lr_d": lr("lr_d", "lr D"),
            "seed": ints("seed", 0, 99, "seed"),
            "chunk": ints("chunk", 1, 500, "chunk"),
            "total_steps": ints("total_steps", 100, 20000, "total steps", 100),
        }
        for name, control in self.controls.items():
            control.style = {"description_width": "90px"}
            control.layout = w.Layout(width="300px")
            control.observe(partial(self._on_setting, name), names="value")
        styles = {"train": "success", "pause": "", "reset": "warning"}
        self.buttons = {}
        for name, style in styles.items():
            self.buttons[name] = w.Button(description=name.title(), button_style=style)
            self.buttons[name].layout = w.Layout(width="90px")
            self.buttons[name].on_click(getattr(self, f"on_{name}"))
        self.status, self.output = w.HTML(), w.Output()
        c, b = list(self.controls.values()), list(self.buttons.values())
        rows = [c[0:3], c[3:6], c[6:], b + [self.status]]
        self.widget = w.VBox([w.HBox(row) for row in rows] + [self.output])
        self.redraw()

    def display(self) -> None:
        from IPython.display import display

        display(self.widget)

    def _ipython_display_(self) -> None:
        self.display()

    def _say(self, text: str) -> None:
        t, pending = self.trainer, self.trainer.pending_reset
        note = f" <b>Press Reset to apply {', '.join(pending)}.</b>" if pending else ""
        self.status.value = f"step {t.step} / {t.total_steps}: {text}{note}"

    def _on_setting(self, name: str, change: dict) -> None:
        try:
            setattr(self.trainer, name, change["new"])
        except (TypeError, ValueError) as err:
            return self._say(f"<span style='color:#b00'>{err}</span>")
        self._say(f"{name} = {change['new']}")

    def redraw(self) -> None:
        """Show the trainer's figure in the Output, in place of the previous one."""
        from IPython import get_ipython
        from IPython.display import Image, clear_output, display

        buf = io.BytesIO()
        self.trainer.figure().savefig(buf, format="png")
        png = buf.getvalue()
        if getattr(get_ipython(), "kernel", None) is not None:
            with self.output:  # the frontend captures what is displayed here
                clear_output(wait=True)
                display(Image(data=png, format="png"))
        else:  # no frontend to capture it (tests): set the Output's state directly
            data = {"image/png": base64.b64encode(png).decode("ascii")}
            data["text/plain"] = f"<toy GAN at step {self.trainer.step}>"
            out = {"output_type": "display_data", "data": data, "metadata": {}}
            self.output.outputs = (out,)
        self.redraws += 1
        cov, t = self.trainer.coverage, self.trainer
        self._say(
            f"{cov['modes'][-1]} of 8 modes, quality {cov['quality'][-1]:.0%}, "
            f"last chunk {t.seconds:.2f} s" + (" (done)" if t.done else "")
        )

    def on_train(self, _button=None) -> None:
        """Train until done or paused (in a kernel), or one chunk (no running loop)."""
        if self.trainer.done:
            return self._say("done: raise total steps or press Reset.")
        self._paused = False
        if self._task is not None and not self._task.done():
            return  # the running task carries on
        loop = _running_loop()
        if loop is not None:
            self._task = loop.create_task(self._train_loop())
        else:
            self.trainer.train_chunk()
            self.redraw()

    async def _train_loop(self) -> None:
        try:
            while not self._paused and not self.trainer.done:
                self.trainer.train_chunk()
                self.redraw()
                await asyncio.sleep(0.01)  # the kernel handles Pause, sliders here
        except Exception as err:  # a task's error is not shown anywhere: say it
            self._say(f"<span style='color:#b00'>error: {err!r}</span>")
            raise

    def on_pause(self, _button=None) -> None:
        """Stop after the current chunk."""
        self._paused = True
        self._say("paused.")

    def on_reset(self, _button=None) -> None:
        """Pause, rebuild the networks from the settings and seed, and redraw."""
        self._paused = True
        self.trainer.reset()
        self.redraw()
