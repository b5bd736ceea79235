"""A real (tiny) trainer on the shared solver, run as a subprocess by the solver tests.

Fits TinyNet to a smooth function of synthetic inputs. ``TOY_STEP_SLEEP`` slows each step so a test
can kill the process mid-run.
"""
import argparse
import os
import sys
import time

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.dirname(os.path.abspath(__file__)))))

import torch  # noqa: E402
from torch.utils.data import TensorDataset  # noqa: E402

from engines.testing import TinyNet  # noqa: E402
from trainers.solver import Solver, add_solver_arguments, config_from_args, seed_everything  # noqa: E402


def main(argv=None):
    p = argparse.ArgumentParser()
    add_solver_arguments(p, epochs=3, batch_size=16, ckpt_every=5)
    args = p.parse_args(argv)
    torch.set_num_threads(1)
    seed_everything(args.seed)
    g = torch.Generator().manual_seed(123)
    x = torch.randn(256, 8, generator=g)
    y = 0.5 * x[:, :4].sum(1, keepdim=True) + 0.1 * torch.sin(x[:, 4:5])
    model = TinyNet(8, 32, 1)
    opt = torch.optim.Adam(model.parameters(), lr=1e-2)
    sched = torch.optim.lr_scheduler.StepLR(opt, step_size=20, gamma=0.5)
    solver = Solver(model, opt, config_from_args(args, progress_bar=False), scheduler=sched,
                    hparams={"hidden": 32})
    delay = float(os.environ.get("TOY_STEP_SLEEP", 0))

    def step(m, batch):
        if delay:
            time.sleep(delay)
        xb, yb = batch
        return {"loss": torch.mean((m(xb) - yb) ** 2)}

    res = solver.fit(TensorDataset(x, y), step,
                     validate=lambda m: {"loss": float(torch.mean((m(x) - y) ** 2))},
                     on_epoch_end=lambda e, tr, va: print(f"Epoch {e}: Train Loss: {tr['loss']:.4f} Val Loss: {va.get('loss', 0):.4f}"))
    if solver.step and not res["stopped"]:
        solver.export(os.path.join(args.out_dir, "toy.safetensors"), {"trained_on": "synthetic"})
    return 0


if __name__ == "__main__":
    sys.exit(main())
