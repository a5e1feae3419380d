"""A model from another library, made interventionally consistent: pythae's VAE on MNIST.

    pip install pythae
    python examples/third_party.py [--steps 300] [--data-root DIR]

pythae (https://github.com/clementchadebec/benchmark_VAE) builds a VAE from an encoder that
returns a ``ModelOutput`` with ``embedding`` and ``log_covariance`` and a decoder that returns
one with ``reconstruction``. This script takes pythae's own MNIST conv encoder and decoder,
puts an ``XBlock`` between them (the retrofit), and trains with the VAE loss plus
``InvarianceLoss``, then prints the consistency report. The library reads pythae's encoder
output as it is (``posterior_mean`` knows ``embedding``); the only adapter is the one line that
takes ``reconstruction`` out of the decoder's output, and it lives here.
"""

from __future__ import annotations

import argparse

import torch
from pythae.models import VAE, VAEConfig
from pythae.models.nn.benchmarks.mnist import Decoder_Conv_AE_MNIST, Encoder_Conv_VAE_MNIST

from consistency import (
    AggregatePosterior,
    ConsistencyMetric,
    InvarianceLoss,
    ResponseModel,
    XBlock,
)
from consistency.data import mnist

N = 6


class _Help(argparse.RawDescriptionHelpFormatter, argparse.ArgumentDefaultsHelpFormatter):
    """The docstring as written, and every flag's default in --help."""


def main(argv: list[str] | None = None) -> dict[str, float]:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=_Help)
    parser.add_argument("--steps", type=int, default=300, help="training steps")
    parser.add_argument("--batch-size", type=int, default=64, help="images per step")
    parser.add_argument("--lr", type=float, default=1e-3, help="Adam learning rate")
    parser.add_argument("--beta", type=float, default=1.0, help="β of the VAE")
    parser.add_argument("--eval-images", type=int, default=2000, help="test images evaluated")
    parser.add_argument(
        "--eval-samples", type=int, default=300, help="prior samples T of the evaluation"
    )
    parser.add_argument("--data-root", default=None, help="folder with the MNIST files")
    parser.add_argument(
        "--seed",
        type=int,
        default=0,
        help="seeds the model's initial weights, the data order and the interventions",
    )
    args = parser.parse_args(argv)
    torch.manual_seed(args.seed)

    # the third-party model, as its library builds it
    config = VAEConfig(input_dim=(1, 28, 28), latent_dim=N)
    vae = VAE(config, encoder=Encoder_Conv_VAE_MNIST(config), decoder=Decoder_Conv_AE_MNIST(config))
    # the retrofit: an XBlock between pythae's encoder and decoder
    vae.latent = XBlock(N, 1)

    def generate(noise: torch.Tensor) -> torch.Tensor:  # the one adapter: ModelOutput -> Tensor
        return vae.decoder(vae.latent(noise))["reconstruction"]

    sampler = AggregatePosterior(N)
    # pythae's VAE has .encoder and .decoder, but its decoder returns a ModelOutput: hand the
    # library the adapted generative map, and the VAE for its modules (BatchNorm, modes)
    model = ResponseModel(vae.encoder, generate, xblock=vae.latent, modules=[vae])
    invariance = InvarianceLoss(model)
    opt = torch.optim.Adam(vae.parameters(), lr=args.lr)
    train_x = mnist(args.data_root, "train").images
    test_x = mnist(args.data_root, "test").images[: args.eval_images]
    g = torch.Generator().manual_seed(args.seed)
    vae.train()
    for step in range(args.steps):
        x = train_x[torch.randint(len(train_x), (args.batch_size,), generator=g)]
        out = vae.encoder(x)  # ModelOutput(embedding, log_covariance)
        mu, logvar = out.embedding, out.log_covariance
        noise = mu + torch.randn_like(mu) * (0.5 * logvar).exp()
        sampler.update(mu)
        reconstruction = (generate(noise) - x).square().sum((1, 2, 3)).mean()
        kl = 0.5 * (mu.square() + logvar.exp() - 1 - logvar).sum(1).mean()
        consistency = invariance(mu)
        loss = reconstruction + args.beta * kl + consistency
        opt.zero_grad()
        loss.backward()
        opt.step()
        if step % 100 == 0 or step == args.steps - 1:
            print(
                f"step {step:5d}  reconstruction {float(reconstruction.detach()):8.2f}  KL {float(kl.detach()):6.2f}  "
                f"consistency {float(consistency.detach()):6.3f}"
            )

    vae.eval()
    metric = ConsistencyMetric(model, n_samples=args.eval_samples, n_interventions=3)
    for chunk in test_x.split(256):
        metric.update(chunk)
    result = metric.compute()
    print(result.report)
    print("self-consistency by sampling mode:\n" + str(result.self_consistency))
    scores = {f"scn_{m}": v for m, v in result.self_consistency.means().items()}
    scores["mean_invariance"] = result.report.mean_invariance
    scores["reconstruction"] = result.reconstruction
    return {k: float(v) for k, v in scores.items()}


if __name__ == "__main__":
    main()
