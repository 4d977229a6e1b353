"""A GPU estimate for the fast and paper networks, measured with PyTorch (NOT composer's training).

The GPU machine lent to this project has PyTorch but no TensorFlow, and TensorFlow's CUDA wheels
are far too large to carry there, so composer's own training cannot run on it. This script builds
the same two networks in PyTorch and times training steps on the same cuDNN LSTM kernels that
TensorFlow calls, to estimate what an epoch of the paper's 172-piece GiantMIDI subset costs:

- fast: Embedding 128 -> 2 x LSTM 512 (cuDNN) with dropout between -> Dense vocab, every position
  trained, batch 64 (the preset) and 256, seq-len 128, float32 and mixed precision (float16 autocast + loss scaling).
- paper: 3 x LSTM 512 with recurrent dropout 0.3 -> BN/Dropout/Dense 256/ReLU/BN/Dropout/Dense,
  one target per window, batch 128, seq-len 100. Recurrent dropout rules cuDNN out (in Keras as
  here), so the LSTMs run step by step (LSTMCell with a dropout mask on h), float32.

An epoch is every training token a target once (service/job/train.py): fast needs tokens / (batch x 128)
steps, paper tokens / 128. Token counts per piece come from the 56 GiantMIDI files of
../shared/midi (remi: 13,996 tokens per piece, notes-chords: 2,280), times 172 pieces.

    python benchmarks/gpu_proxy.py [--steps 30]
"""

from __future__ import annotations

import argparse
import statistics
import time

import torch
from torch import nn

PIECES = 172
REMI_TOKENS_PER_PIECE, NOTES_CHORDS_TOKENS_PER_PIECE = 13_996, 2_280
REMI_VOCAB, NOTES_CHORDS_VOCAB = 306, 777


class Fast(nn.Module):
    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.embedding = nn.Embedding(vocab, 128)
        self.lstm = nn.LSTM(128, 512, num_layers=2, dropout=0.2, batch_first=True)
        self.dropout = nn.Dropout(0.2)
        self.logits = nn.Linear(512, vocab)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.lstm(self.embedding(x))
        return self.logits(self.dropout(out))


class Paper(nn.Module):
    def __init__(self, vocab: int) -> None:
        super().__init__()
        self.cells = nn.ModuleList([nn.LSTMCell(1, 512), nn.LSTMCell(512, 512), nn.LSTMCell(512, 512)])
        self.head = nn.Sequential(nn.BatchNorm1d(512), nn.Dropout(0.3), nn.Linear(512, 256), nn.ReLU(),
                                  nn.BatchNorm1d(256), nn.Dropout(0.3), nn.Linear(256, vocab))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        batch, steps, _ = x.shape
        seq = x
        for cell in self.cells:
            h = c = torch.zeros(batch, 512, device=x.device)
            mask = torch.bernoulli(torch.full((batch, 512), 0.7, device=x.device)) / 0.7  # recurrent dropout
            outs = []
            for t in range(steps):
                h, c = cell(seq[:, t], (h * mask, c))
                outs.append(h)
            seq = torch.stack(outs, dim=1)
        return self.head(seq[:, -1])


def time_steps(model: nn.Module, make_batch, loss_fn, steps: int, mixed: bool, optimizer=torch.optim.Adam) -> float:
    """Median seconds per training step after 5 warm-up steps."""
    device = next(model.parameters()).device
    optimizer = optimizer(model.parameters(), 1e-3)
    scaler = torch.amp.GradScaler("cuda", enabled=mixed)
    times = []
    for i in range(steps + 5):
        x, y = make_batch()
        torch.cuda.synchronize(device)
        started = time.perf_counter()
        with torch.autocast("cuda", dtype=torch.float16, enabled=mixed):
            loss = loss_fn(model(x), y)
        optimizer.zero_grad(set_to_none=True)
        scaler.scale(loss).backward()
        scaler.step(optimizer)
        scaler.update()
        torch.cuda.synchronize(device)
        if i >= 5:
            times.append(time.perf_counter() - started)
    return statistics.median(times)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--steps", type=int, default=30)
    args = parser.parse_args()
    device = torch.device("cuda")
    torch.backends.cudnn.benchmark = True
    print(f"device: {torch.cuda.get_device_name(device)}; torch {torch.__version__}, "
          f"cuDNN {torch.backends.cudnn.version()}")

    fast_tokens = PIECES * REMI_TOKENS_PER_PIECE

    def fast_loss(logits, y):
        return nn.functional.cross_entropy(logits.reshape(-1, REMI_VOCAB).float(), y.reshape(-1))

    print(f"{'network':44} {'ms/step':>8} {'windows/s':>10} {'targets/s':>10} {'steps/epoch':>11} {'s/epoch':>8}")
    # The preset's batch (64 per worker) and a larger one (a GPU worker can take --batch-size 256).
    for batch, mixed in ((64, False), (64, True), (256, False), (256, True)):
        def fast_batch(batch=batch):
            x = torch.randint(0, REMI_VOCAB, (batch, 129), device=device)
            return x[:, :-1], x[:, 1:]

        seconds = time_steps(Fast(REMI_VOCAB).to(device), fast_batch, fast_loss, args.steps, mixed)
        steps_per_epoch = fast_tokens // (batch * 128)
        name = f"fast, batch {batch}, cuDNN, {'mixed float16' if mixed else 'float32'}"
        print(f"{name:44} {1000 * seconds:8.2f} {batch / seconds:10.0f} {batch * 128 / seconds:10.0f} "
              f"{steps_per_epoch:11d} {steps_per_epoch * seconds:8.1f}")

    paper_tokens = PIECES * NOTES_CHORDS_TOKENS_PER_PIECE
    paper_steps_per_epoch = paper_tokens // 128

    def paper_batch():
        x = torch.randint(0, NOTES_CHORDS_VOCAB, (128, 101), device=device)
        return (x[:, :-1].float() / NOTES_CHORDS_VOCAB)[..., None], x[:, -1]

    seconds = time_steps(Paper(NOTES_CHORDS_VOCAB).to(device), paper_batch, nn.functional.cross_entropy,
                         max(5, args.steps // 3), False, torch.optim.RMSprop)
    name = "paper, recurrent dropout (no cuDNN), float32"
    print(f"{name:44} {1000 * seconds:8.2f} {128 / seconds:10.0f} {128 / seconds:10.0f} "
          f"{paper_steps_per_epoch:11d} {paper_steps_per_epoch * seconds:8.1f}")
    print(f"epoch = every token a target once: fast {fast_tokens:,} remi tokens, paper {paper_tokens:,} "
          f"notes-chords tokens ({PIECES} pieces)")


if __name__ == "__main__":
    main()
