"""A small, readable training loop for the paper's models (optional layer, not a framework).

Adam, lr 1e-4 halved every 30 epochs, batch 128, seeds for torch / numpy / random; an XBlock
temperature schedule (constant, annealed over the run, or the authors') and linear λ warm-up;
bf16 autocast and
``torch.compile`` as flags; checkpoints every N steps and on Ctrl-C, with bit-for-bit resume
(model, optimiser, scheduler, sampler, RNG states; the data order is a function of the seed and
the step); evaluation with :class:`~consistency.ConsistencyEvaluator` at the end.
"""

from __future__ import annotations

import json
import math
import os
import random
import shutil
import time
import warnings
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any, Literal

import numpy as np
import torch
from torch import Tensor
from torch.utils.data import Dataset

from . import _dist
from .consistency_metric import ConsistencyMetric
from .errors import DataFileError, InvalidValueError, MissingFileError
from .models.families import PaperModel
from .report import ConsistencyReport, SelfConsistencyTable

__all__ = [
    "TrainConfig",
    "TrainResult",
    "evaluate_model",
    "load_checkpoint",
    "load_model_state",
    "resolve_device",
    "set_seed",
    "tau_at",
    "train",
    "warmup_lengths",
]

TauSchedule = Literal["constant", "anneal", "authors"]
TAU_SCHEDULES: tuple[str, ...] = ("constant", "anneal", "authors")

CHECKPOINT = "checkpoint.pt"
PREVIOUS_CHECKPOINT = "checkpoint.prev.pt"


@dataclass
class TrainConfig:
    """Settings of :func:`train` (defaults: the paper's, except ``steps``, the τ schedule and
    the KL warm-up).

    ``tau_schedule`` sets the XBlock's gate temperature at every step (:func:`tau_at`):
    ``"constant"`` leaves the XBlock's own τ; ``"anneal"`` decays it geometrically from
    ``tau_start`` to ``tau_end`` over the whole run, so the schedule has the same shape for a
    short and a long run and its floor keeps gradients flowing into the gate logits;
    ``"authors"`` is the authors' ``max(exp(-0.01 step), 0.01)``, which reaches its floor at
    step ~460 whatever the run length and then leaves about 5 % of gate draws with a gradient.
    The default is ``"anneal"``, the library's recipe (docs/method.md).

    ``kl_warmup_steps`` ramps the β-VAE's KL term linearly from 0 over that many steps
    (:attr:`PaperModel.kl_scale <consistency.models.PaperModel>` rises from 0 to 1), the usual
    guard against posterior collapse early in training; the AVAE is left without it.
    ``warmup_steps`` does the same for the consistency loss's weight; ``None`` (the default)
    ramps it over the KL warm-up's steps where there is one and not at all otherwise
    (:func:`warmup_lengths`). Both defaults are the library's, chosen by the ablations of
    docs/method.md, "Deviations", item 17; the paper's are ``kl_warmup_steps=0`` and
    ``warmup_steps=10_000``. ``gate_lr_scale`` multiplies the learning rate of the XBlock's
    gate logits (a second Adam parameter group when it is not 1).

    ``grad_clip`` caps the global gradient norm before each Adam step (``None``: no cap). The
    norm is recorded every step (``history[i]["grad_norm"]``) either way.

    ``time_limit`` stops training after that many seconds (wall clock, checked after each
    step): the checkpoint is saved and the run is evaluated as usual, ``TrainResult.steps`` says
    how far it got and ``resume=True`` continues it. The schedules keep the shape of the
    ``steps`` the run was configured for. ``None``: no limit.

    Checkpoints are written every ``checkpoint_every`` steps *and* whenever
    ``checkpoint_seconds`` of wall clock have passed since the last one (default 120 s: a
    killed run loses at most about two minutes), at the end and on Ctrl-C. The previous
    checkpoint is kept as ``checkpoint.prev.pt`` until the new one is complete; a resume from
    an unreadable latest checkpoint falls back to it with a warning. ``0`` / ``None`` turn the
    step / time trigger off.
    """

    steps: int = 100_000
    batch_size: int = 128
    lr: float = 1e-4
    halve_lr_every_epochs: int = 30
    seed: int = 11
    device: str | None = None
    amp: bool = False
    compile: bool = False
    tau_schedule: TauSchedule = "anneal"
    tau_start: float = 1.0
    tau_end: float = 0.2
    warmup_steps: int | None = None
    kl_warmup_steps: int = 300
    gate_lr_scale: float = 1.0
    grad_clip: float | None = None
    time_limit: float | None = None
    checkpoint_every: int = 1000
    checkpoint_seconds: float | None = 120.0
    out: str = "runs/run"
    eval_samples: int = 1000
    eval_interventions: int = 10
    eval_data: int = 10_000
    progress: bool = True
    figures: bool = True

    def __post_init__(self) -> None:
        if self.tau_schedule not in TAU_SCHEDULES:
            raise InvalidValueError(
                f"tau_schedule must be one of {TAU_SCHEDULES}; got {self.tau_schedule!r}"
            )
        if self.time_limit is not None and not self.time_limit > 0:
            raise InvalidValueError(
                f"time_limit must be > 0 seconds or None; got {self.time_limit}"
            )
        if self.checkpoint_every < 0:
            raise InvalidValueError(
                f"checkpoint_every must be >= 0 steps (0: off); got {self.checkpoint_every}"
            )
        if self.checkpoint_seconds is not None and not self.checkpoint_seconds >= 0:
            raise InvalidValueError(
                f"checkpoint_seconds must be >= 0 or None (0 / None: off); got "
                f"{self.checkpoint_seconds}"
            )
        if self.kl_warmup_steps < 0:
            raise InvalidValueError(
                f"kl_warmup_steps must be >= 0 (0: off); got {self.kl_warmup_steps}"
            )
        if self.warmup_steps is not None and self.warmup_steps < 0:
            raise InvalidValueError(
                f"warmup_steps must be >= 0 (0: off) or None (the KL warm-up's length where "
                f"there is one); got {self.warmup_steps}"
            )
        if not self.gate_lr_scale > 0:
            raise InvalidValueError(f"gate_lr_scale must be > 0; got {self.gate_lr_scale}")
        if self.grad_clip is not None and not self.grad_clip > 0:
            raise InvalidValueError(f"grad_clip must be > 0 or None; got {self.grad_clip}")
        if not (self.tau_start > 0 and self.tau_end > 0):
            raise InvalidValueError(
                f"tau_start and tau_end must be > 0; got {self.tau_start} and {self.tau_end}"
            )


@dataclass
class TrainResult:
    """What a run produced."""

    steps: int
    out: Path
    history: list[dict[str, float]] = field(default_factory=list)
    test_reconstruction: float | None = None
    report: ConsistencyReport | None = None
    self_consistency: SelfConsistencyTable | None = None
    interrupted: bool = False
    time_limited: bool = False
    seconds: float | None = None  # wall time of the training loop
    eval_seconds: float | None = None  # wall time of the end-of-run evaluation (figures included)


def set_seed(seed: int) -> None:
    """Seed python's ``random``, numpy and torch (all devices)."""
    random.seed(seed)
    np.random.seed(seed % 2**32)
    torch.manual_seed(seed)


def resolve_device(device: str | None) -> torch.device:
    """``device`` or CUDA when available, else CPU."""
    return (
        torch.device(device)
        if device
        else torch.device("cuda" if torch.cuda.is_available() else "cpu")
    )


def _images(dataset: Dataset[Any]) -> Tensor:
    """All images of a data set as one tensor (in-memory data sets are used directly)."""
    held = getattr(dataset, "images", None)
    if isinstance(held, Tensor):
        return held
    items = [dataset[i] for i in range(len(dataset))]  # type: ignore[arg-type]
    return torch.stack([it[0] if isinstance(it, (tuple, list)) else it for it in items])


def _batch_indices(step: int, n_data: int, batch: int, seed: int) -> Tensor:
    """Indices of the batch at ``step``: epoch-wise permutations determined by (seed, epoch)."""
    per_epoch = max(1, n_data // batch)
    epoch, pos = divmod(step, per_epoch)
    g = torch.Generator().manual_seed(seed * 1_000_003 + epoch)
    perm = torch.randperm(n_data, generator=g)
    return perm[pos * batch : (pos + 1) * batch] if n_data >= batch else perm


def _rng_state() -> dict[str, Any]:
    """Every generator's state in types ``torch.load(weights_only=True)`` accepts (tensors, ints,
    floats, strings, tuples)."""
    kind, keys, pos, has_gauss, cached = np.random.get_state()
    version, internal, gauss_next = random.getstate()
    state: dict[str, Any] = {
        "torch": torch.get_rng_state(),
        "numpy": {
            "kind": str(kind),
            "keys": torch.from_numpy(np.asarray(keys, dtype=np.int64)),
            "pos": int(pos),
            "has_gauss": int(has_gauss),
            "cached_gaussian": float(cached),
        },
        "python": (int(version), tuple(int(v) for v in internal), gauss_next),
    }
    if torch.cuda.is_available():
        state["cuda"] = torch.cuda.get_rng_state_all()
    return state


def _set_rng_state(state: dict[str, Any]) -> None:
    torch.set_rng_state(state["torch"])
    np_state = state["numpy"]
    np.random.set_state(
        (
            np_state["kind"],
            np_state["keys"].numpy().astype(np.uint32),
            np_state["pos"],
            np_state["has_gauss"],
            np_state["cached_gaussian"],
        )
    )
    version, internal, gauss_next = state["python"]
    random.setstate((version, tuple(internal), gauss_next))
    if "cuda" in state and torch.cuda.is_available():
        torch.cuda.set_rng_state_all(state["cuda"])


CHECKPOINT_KEYS = (
    "step",
    "model",
    "optimizer",
    "scheduler",
    "rng",
    "config",
    "model_spec",
    "history",
)


def load_checkpoint(path: str | Path, map_location: Any = None) -> dict[str, Any]:
    """Read a checkpoint :func:`train` wrote, safely (``torch.load(weights_only=True)``: no
    arbitrary code runs), and check that it has every part a resume needs.

    Raises:
        MissingFileError: no file at ``path``.
        DataFileError: the file is not a readable checkpoint (truncated, not a torch file, holds
            objects ``weights_only`` refuses) or lacks a key; the message names the key(s).
    """
    p = Path(path)
    if not p.exists():
        raise MissingFileError(f"no checkpoint at {p}")
    try:
        ckpt = torch.load(p, map_location=map_location, weights_only=True)
    except Exception as err:  # pickle / zip / weights_only errors all mean "not a checkpoint"
        raise DataFileError(
            f"{p} is not a readable checkpoint (torch.load(weights_only=True) failed: "
            f"{type(err).__name__}: {str(err).splitlines()[0] if str(err) else ''})"
        ) from err
    if not isinstance(ckpt, dict):
        raise DataFileError(f"{p} holds a {type(ckpt).__name__}, not a checkpoint dict")
    missing = [k for k in CHECKPOINT_KEYS if k not in ckpt]
    if missing:
        raise DataFileError(
            f"checkpoint {p} lacks the key(s) {missing}; expected {list(CHECKPOINT_KEYS)}"
        )
    return ckpt


def load_model_state(
    model: torch.nn.Module, state: dict[str, Any], *, source: str = "checkpoint"
) -> None:
    """``model.load_state_dict(state)`` after checking every key and shape, so that a checkpoint
    of another model says which parameters differ instead of failing deep inside torch.

    Raises:
        DataFileError: missing or unexpected keys, or a tensor of another shape; the message
            names the first few keys (and the shapes met).
    """
    if not isinstance(state, dict):
        raise DataFileError(f"{source}: the model state must be a dict; got {type(state).__name__}")
    own = model.state_dict()
    missing = [k for k in own if k not in state]
    unexpected = [k for k in state if k not in own]
    shapes = [
        f"{k}: {source} {tuple(v.shape)}, model {tuple(own[k].shape)}"
        for k, v in state.items()
        if k in own and isinstance(v, Tensor) and tuple(v.shape) != tuple(own[k].shape)
    ]
    not_tensors = [k for k, v in state.items() if k in own and not isinstance(v, Tensor)]
    problems = []
    if missing:
        problems.append(
            f"missing key(s) {missing[:5]}"
            + (f" and {len(missing) - 5} more" if len(missing) > 5 else "")
        )
    if unexpected:
        problems.append(
            f"unexpected key(s) {unexpected[:5]}"
            + (f" and {len(unexpected) - 5} more" if len(unexpected) > 5 else "")
        )
    if shapes:
        problems.append("shape mismatch " + "; ".join(shapes[:5]))
    if not_tensors:
        problems.append(f"non-tensor value(s) at {not_tensors[:5]}")
    if problems:
        raise DataFileError(f"{source} does not fit this model: " + "; ".join(problems))
    model.load_state_dict(state)


def _save(
    path: Path,
    model: PaperModel,
    opt: torch.optim.Optimizer,
    sched: Any,
    step: int,
    config: TrainConfig,
    history: list[dict[str, float]],
) -> None:
    tmp = path.with_suffix(".tmp")
    torch.save(
        {
            "step": step,
            "model": model.state_dict(),
            "optimizer": opt.state_dict(),
            "scheduler": sched.state_dict(),
            "rng": _rng_state(),
            "config": asdict(config),
            "model_spec": {
                "family": model.family,
                "preset": model.preset.name,
                "variant": model.variant,
            },
            "history": history,
        },
        tmp,
    )
    _keep_previous(path)
    tmp.replace(path)  # atomic: the latest name always holds a complete checkpoint


def _keep_previous(path: Path) -> None:
    """Make ``checkpoint.prev.pt`` a copy of the current checkpoint (a hard link where the file
    system has them) without ever leaving the latest name empty."""
    if not path.exists():
        return
    previous = path.with_name(PREVIOUS_CHECKPOINT)
    staged = path.with_name(PREVIOUS_CHECKPOINT + ".tmp")
    staged.unlink(missing_ok=True)
    try:
        os.link(path, staged)
    except OSError:
        shutil.copyfile(path, staged)
    staged.replace(previous)


def tau_at(
    step: int,
    steps: int,
    schedule: TauSchedule | str = "anneal",
    start: float = 1.0,
    end: float = 0.2,
) -> float | None:
    r"""The XBlock gate temperature at ``step`` (0-based) of a ``steps``-step run.

    * ``"anneal"``: :math:`\tau = \tau_0 (\tau_1/\tau_0)^{s/(S-1)}`, from ``start`` at the first
      step to ``end`` at the last, whatever the run length;
    * ``"authors"``: :math:`\max(e^{-0.01 s}, 0.01)` (floor reached at step ~460);
    * ``"constant"``: ``None`` (leave the XBlock's τ as it is).

    Example:
        >>> tau_at(0, 100), tau_at(99, 100), round(tau_at(500, 1000, "authors"), 4)
        (1.0, 0.2, 0.01)
    """
    if schedule == "constant":
        return None
    if schedule == "authors":
        return max(math.exp(-0.01 * step), 0.01)
    if schedule == "anneal":
        frac = min(1.0, step / (steps - 1)) if steps > 1 else 1.0
        return float(start * (end / start) ** frac)
    raise InvalidValueError(f"schedule must be one of {TAU_SCHEDULES}; got {schedule!r}")


def train(
    model: PaperModel,
    dataset: Dataset[Any],
    config: TrainConfig,
    *,
    test_set: Dataset[Any] | None = None,
    resume: bool = False,
    evaluate: bool = True,
) -> TrainResult:
    """Train ``model`` on ``dataset`` (images or ``(image, label)`` items) as ``config`` says.

    Writes ``config.out/checkpoint.pt`` every ``checkpoint_every`` steps, at the end and on
    Ctrl-C; ``resume=True`` continues from it bit-for-bit. At the end, unless ``evaluate`` is
    false, evaluates on ``test_set`` (or the training data) and writes ``report.json`` and
    figures; ``history.json`` holds, per step, the loss terms, the learning rate, the
    consistency weight and the XBlock's τ.

    Under ``torch.distributed`` (an initialised process group, e.g. from ``torchrun``) the step
    runs under ``DistributedDataParallel``: ``batch_size`` is per process, each rank takes its
    own slice of one global permutation, the global RNG is reseeded every step from
    ``(seed, step, rank)`` (so ranks draw different interventions, gates and prior samples, and
    a resumed run continues bit for bit), the sampler gathers every rank's means, only rank 0
    writes checkpoints, history and the report, and every rank evaluates its share of the test
    set and returns the same (synchronised) scores.
    """
    out = _writable_folder(Path(config.out))
    device = resolve_device(config.device)
    set_seed(config.seed)
    data = _images(dataset)
    if data.shape[0] == 0:
        raise InvalidValueError("the training data set is empty")
    model.to(device)
    distributed = _dist.is_distributed()
    rank = _dist.rank()
    world = torch.distributed.get_world_size() if distributed else 1
    params = [p for p in model.parameters() if p.requires_grad]
    gates = model.xblock.gate_logits if model.xblock is not None else None
    opt, sched = _optimiser(params, data.shape[0], config, gates)
    ckpt_path = out / CHECKPOINT
    start, history = _restore(ckpt_path, model, opt, sched, device) if resume else (0, [])
    if config.compile:
        model.encoder.compile()
        model.decoder.compile()
    step_module: torch.nn.Module | None = None
    if distributed:
        step_module = torch.nn.parallel.DistributedDataParallel(
            _LossStep(model), device_ids=[device.index] if device.type == "cuda" else None
        )
    model.train()
    bar = _progress_bar(config, start, f"{model.family}-{model.variant}")
    amp = torch.autocast(device.type, dtype=torch.bfloat16, enabled=config.amp)
    step, interrupted, time_limited = start, False, False
    t0 = time.perf_counter()
    last_save = t0
    stop = _InterruptAtStepEnd()
    try:
        stop.install()
        while step < config.steps:
            idx = _batch_indices(step, data.shape[0], config.batch_size * world, config.seed)
            if distributed:
                per = max(1, idx.shape[0] // world)
                idx = idx[rank * per : (rank + 1) * per]
                torch.manual_seed(config.seed * 1_000_003 + step * 1_009 + rank)
            x = data[idx].to(device, non_blocking=True)
            _apply_schedules(model, step, config)
            lr = float(opt.param_groups[0]["lr"])
            with amp:
                terms = step_module(x) if step_module is not None else model.loss(x)
            grad_norm = _optimiser_step(terms.total, params, opt, sched, config.grad_clip)
            step += 1
            history.append(_record(model, step, terms, lr, grad_norm))
            _show(bar, history[-1])
            due = bool(config.checkpoint_every) and step % config.checkpoint_every == 0
            if (
                config.checkpoint_seconds
                and time.perf_counter() - last_save >= config.checkpoint_seconds
            ):
                due = True
            if due and rank == 0 and step < config.steps:
                _save(ckpt_path, model, opt, sched, step, config, history)
                last_save = time.perf_counter()
            if stop.requested:  # Ctrl-C: the step finished, so the checkpoint is exact
                raise KeyboardInterrupt
            if config.time_limit is not None and _time_is_up(t0, config.time_limit, distributed):
                time_limited = step < config.steps
                break
    except KeyboardInterrupt:
        interrupted = True
        if rank == 0:
            _save(ckpt_path, model, opt, sched, step, config, history)
        warnings.warn(
            f"interrupted at step {step}: checkpoint saved to {ckpt_path}; continue with "
            "resume=True",
            stacklevel=2,
        )
    finally:
        stop.uninstall()
        if bar is not None:
            bar.close()
    seconds = time.perf_counter() - t0
    if distributed:  # each rank's last step moved its own BatchNorm statistics: keep rank 0's
        for buffer in model.buffers():
            torch.distributed.broadcast(buffer, src=0)
    result = TrainResult(
        steps=step,
        out=out,
        history=history,
        interrupted=interrupted,
        time_limited=time_limited,
        seconds=seconds,
    )
    if interrupted:
        return result
    if time_limited:
        warnings.warn(
            f"time_limit of {config.time_limit} s reached at step {step} of {config.steps}: "
            f"checkpoint saved to {ckpt_path}; continue with resume=True",
            stacklevel=2,
        )
    if rank == 0:
        _save(ckpt_path, model, opt, sched, step, config, history)
        (out / "history.json").write_text(
            json.dumps({"seconds": seconds, "steps_done": step - start, "history": history})
        )
    if evaluate:
        t_eval = time.perf_counter()
        evaluate_model(model, test_set if test_set is not None else dataset, config, result)
        result.eval_seconds = time.perf_counter() - t_eval
    return result


class _InterruptAtStepEnd:
    """A SIGINT handler for the training loop: the first Ctrl-C asks the loop to stop after the
    step in progress (so the checkpoint holds a whole step and its random state), a second one
    interrupts at once. Outside the main thread it does nothing (Ctrl-C then interrupts at once,
    as Python's default)."""

    def __init__(self) -> None:
        self.requested = False
        self._previous: Any = None
        self._installed = False

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def install(self) -> None:
        import signal
        import threading

        if threading.current_thread() is threading.main_thread():
            self._previous = signal.signal(signal.SIGINT, self._handle)
            self._installed = True

    def uninstall(self) -> None:
        if self._installed:
            import signal

            signal.signal(signal.SIGINT, self._previous)
            self._installed = False


def _writable_folder(out: Path) -> Path:
    """``out``, created if needed, after checking that files can be written there (before any
    training, so a read-only folder fails at once, not after the run)."""
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / f".write-test-{os.getpid()}"  # per process: DDP ranks share the folder
        probe.write_bytes(b"")
        probe.unlink()
    except OSError as err:
        raise DataFileError(
            f"cannot write to the output folder {out} ({err.strerror or err}); pass a writable "
            "--out / TrainConfig(out=...)"
        ) from err
    return out


def _optimiser(
    params: list[torch.nn.Parameter],
    n_data: int,
    config: TrainConfig,
    gates: torch.Tensor | None = None,
) -> tuple[torch.optim.Optimizer, Any]:
    """Adam at ``config.lr``, halved every ``halve_lr_every_epochs`` epochs; the gate logits
    ``gates`` in a group of their own at ``gate_lr_scale`` times the rate when that is not 1."""
    trained_gates = gates is not None and any(p is gates for p in params)
    if config.gate_lr_scale != 1.0 and trained_gates:
        rest = [p for p in params if p is not gates]
        groups: list[dict[str, Any]] = [
            {"params": rest},
            {"params": [gates], "lr": config.lr * config.gate_lr_scale},
        ]
        opt = torch.optim.Adam(groups, lr=config.lr)
    else:
        opt = torch.optim.Adam(params, lr=config.lr)
    per_epoch = max(1, n_data // config.batch_size)
    sched = torch.optim.lr_scheduler.StepLR(
        opt, step_size=config.halve_lr_every_epochs * per_epoch, gamma=0.5
    )
    return opt, sched


def _restore(
    ckpt_path: Path,
    model: PaperModel,
    opt: torch.optim.Optimizer,
    sched: Any,
    device: torch.device,
) -> tuple[int, list[dict[str, float]]]:
    """Model, optimiser, scheduler and RNG states from the checkpoint (the previous one when
    the latest is missing or unreadable, with a warning); its step and history."""
    previous = ckpt_path.with_name(PREVIOUS_CHECKPOINT)
    if not ckpt_path.exists() and not previous.exists():
        raise MissingFileError(
            f"resume: no checkpoint in {ckpt_path.parent} (neither {CHECKPOINT} nor "
            f"{PREVIOUS_CHECKPOINT}); start without --resume / resume=True"
        )
    try:
        ckpt = load_checkpoint(ckpt_path, map_location=device)
        source = ckpt_path
    except DataFileError as err:
        if not previous.exists():
            raise DataFileError(
                f"{err}; no previous checkpoint ({PREVIOUS_CHECKPOINT}) to fall back to: start "
                "the run again without --resume"
            ) from err
        warnings.warn(
            f"the latest checkpoint is unusable ({err}); resuming from the previous one, "
            f"{previous}",
            stacklevel=3,
        )
        ckpt = load_checkpoint(previous, map_location=device)
        source = previous
    load_model_state(model, ckpt["model"], source=f"checkpoint {source}")
    opt.load_state_dict(ckpt["optimizer"])
    sched.load_state_dict(ckpt["scheduler"])
    _set_rng_state(ckpt["rng"])
    return int(ckpt["step"]), list(ckpt["history"])


def _progress_bar(config: TrainConfig, start: int, desc: str) -> Any:
    if not config.progress:
        return None
    try:
        from tqdm.auto import tqdm
    except ImportError:
        return None
    return tqdm(total=config.steps, initial=start, desc=desc, dynamic_ncols=True)


def warmup_lengths(model: PaperModel, config: TrainConfig) -> tuple[int, int]:
    """``(consistency loss, KL term)``: the steps over which :func:`train` ramps each weight of
    ``model`` from 0 (0: no ramp). The KL ramp applies to the β-VAE only (docs/method.md,
    item 17); ``warmup_steps=None`` ramps the loss over the KL's steps."""
    kl = config.kl_warmup_steps if model.family == "VAE" else 0
    loss = kl if config.warmup_steps is None else config.warmup_steps
    return loss, kl


def _apply_schedules(model: PaperModel, step: int, config: TrainConfig) -> None:
    """The XBlock's τ, the consistency weight's and the KL term's warm-ups, and the lazy loss's
    phase at ``step``."""
    tau = tau_at(step, config.steps, config.tau_schedule, config.tau_start, config.tau_end)
    if model.xblock is not None and tau is not None:
        model.xblock.tau = tau
    loss_steps, kl_steps = warmup_lengths(model, config)
    if model.consistency is not None:
        if loss_steps > 0:
            model.consistency.weight = model.consistency_weight * min(1.0, step / loss_steps)
        model.consistency.phase = step % model.consistency.every  # a resumed run: the same steps
    if kl_steps > 0:
        model.kl_scale = min(1.0, step / kl_steps)


def _optimiser_step(
    total: Tensor,
    params: list[torch.nn.Parameter],
    opt: torch.optim.Optimizer,
    sched: Any,
    grad_clip: float | None,
) -> float:
    """Backward, the gradient norm (capped at ``grad_clip``), an optimiser and scheduler step;
    the norm before the cap."""
    opt.zero_grad(set_to_none=True)
    total.backward()
    grad_norm = torch.nn.utils.clip_grad_norm_(
        params, grad_clip if grad_clip is not None else math.inf
    )
    opt.step()
    sched.step()
    return float(grad_norm)


def _record(
    model: PaperModel, step: int, terms: Any, lr: float, grad_norm: float
) -> dict[str, float]:
    """One row of the history: the loss terms, learning rate, gradient norm, weight and τ."""
    record = {"step": step, **{k: float(v.detach()) for k, v in terms._asdict().items()}}
    record["lr"] = lr
    record["grad_norm"] = grad_norm
    if model.consistency is not None:
        record["consistency_weight"] = model.consistency.weight
    if model.xblock is not None:
        record["tau"] = model.xblock.tau
    if model.stochastic:
        record["kl_scale"] = model.kl_scale
    return record


def _show(bar: Any, record: dict[str, float]) -> None:
    if bar is None:
        return
    bar.update(1)
    bar.set_postfix(
        loss=f"{record['total']:.2f}",
        rec=f"{record['reconstruction']:.2f}",
        cons=f"{record['consistency']:.3g}",
        refresh=False,
    )


def _time_is_up(t0: float, limit: float, distributed: bool) -> bool:
    """Whether ``limit`` seconds have passed; under DDP, on any rank (every rank stops at the
    same step, or the next collective hangs)."""
    stop = torch.tensor(float(time.perf_counter() - t0 >= limit))
    if distributed:
        torch.distributed.all_reduce(stop, op=torch.distributed.ReduceOp.MAX)
    return bool(stop)


class _LossStep(torch.nn.Module):
    """``model.loss`` as a module's forward: what ``DistributedDataParallel`` wraps."""

    def __init__(self, model: PaperModel) -> None:
        super().__init__()
        self.model = model

    def forward(self, x: Tensor) -> Any:
        return self.model.loss(x)


@torch.no_grad()
def evaluate_model(
    model: PaperModel, dataset: Dataset[Any], config: TrainConfig, result: TrainResult | None = None
) -> TrainResult:
    """Test reconstruction error and consistency scores of ``model`` on ``dataset``; writes the
    report (JSON, table, figures) to ``config.out``."""
    out = Path(config.out)
    out.mkdir(parents=True, exist_ok=True)
    result = result or TrainResult(steps=0, out=out)
    device = next(model.parameters()).device
    data = _images(dataset)[: config.eval_data]
    rank = _dist.rank()
    if _dist.is_distributed():  # each rank its share; the metric gathers them all
        data = data[rank :: torch.distributed.get_world_size()]
    metric = ConsistencyMetric(
        model,
        n=model.n,
        capacity=max(2, data.shape[0]),
        n_samples=config.eval_samples,
        n_interventions=config.eval_interventions,
        seed=config.seed,
        progress=config.progress,
    ).to(device)
    for chunk in data.split(256):
        metric.update(chunk.to(device))
    result.test_reconstruction = metric.reconstruction()[0]
    evaluator = metric.evaluator()
    result.report = evaluator.evaluate("posterior")
    result.self_consistency = evaluator.self_consistency_table()
    result.report.extras.update(
        {
            "test_reconstruction": result.test_reconstruction,
            "self_consistency_modes": result.self_consistency.means(),
            "family": model.family,
            "variant": model.variant,
            "preset": model.preset.name,
            "steps": result.steps,
        }
    )
    if rank != 0:
        return result
    result.report.save(out)
    if config.figures:
        try:
            from . import plots
        except ImportError:
            warnings.warn("matplotlib is not installed: report saved without figures", stacklevel=2)
        else:
            plots.save_report_figures(result.report, out)
            plots.save_figures(evaluator, out, images=data[:8].to(device))
    return result
