"""Compile speed-up of a whole XC-I training step, and its graph breaks, in one run.

    python benchmarks/bench_compile.py [--preset scene] [--batch-size 128] [--rounds 10]

The step is ``PaperModel.loss`` (encoder, sampler update, XBlock, decoder, reconstruction,
InvarianceLoss under frozen BatchNorm) + backward + Adam, eager against
``torch.compile(model.loss)`` (inductor), timed in interleaved rounds after warm-up (compile time
reported apart); graph breaks counted by ``torch._dynamo.explain`` over the same loss.
"""

from __future__ import annotations

import argparse
import time

import torch
import torch._dynamo as dynamo
from _common import interleaved_times

from consistency.models import build_model


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--preset", default="scene")
    parser.add_argument("--batch-size", type=int, default=128)
    parser.add_argument("--rounds", type=int, default=10)
    args = parser.parse_args(argv)
    x = torch.rand(args.batch_size, 1, 28, 28)

    def make():  # type: ignore[no-untyped-def]
        torch.manual_seed(0)
        model = build_model("AE", args.preset, "XC-I")
        opt = torch.optim.Adam(model.parameters(), lr=1e-4)
        return model, opt

    eager_model, eager_opt = make()
    comp_model, comp_opt = make()
    explanation = dynamo.explain(comp_model.loss)(x)
    dynamo.reset()
    compiled_loss = torch.compile(comp_model.loss)

    def step(loss_fn, opt):  # type: ignore[no-untyped-def]
        def run() -> None:
            terms = loss_fn(x)
            opt.zero_grad()
            terms.total.backward()
            opt.step()

        return run

    t0 = time.perf_counter()
    step(compiled_loss, comp_opt)()
    compile_s = time.perf_counter() - t0
    times = interleaved_times(
        {"eager": step(eager_model.loss, eager_opt), "compiled": step(compiled_loss, comp_opt)},
        rounds=args.rounds,
    )
    print(
        f"XC-I step, preset {args.preset}, batch {args.batch_size}, CPU {torch.get_num_threads()} "
        f"threads, torch {torch.__version__}: graph breaks {explanation.graph_break_count} "
        f"({explanation.graph_count} graphs); first compiled call {compile_s:.1f} s; "
        f"eager {1e3 * times['eager']:.1f} ms, compiled {1e3 * times['compiled']:.1f} ms, "
        f"speed-up {times['eager'] / times['compiled']:.2f}x (median of {args.rounds} interleaved rounds)"
    )
    for reason in explanation.break_reasons:
        print("  break:", reason.reason.splitlines()[0])


if __name__ == "__main__":
    main()
