"""Train a PyTorch classifier, calibrate it, threshold it, deploy it with ThresholdHead.

    python examples/torch_classifier.py

1. The network ends in a Linear layer whose outputs are *logits*;
   CrossEntropyLoss takes those logits (it applies log-softmax itself).
2. calibrate.torch.collect runs it over a held-out DataLoader in eval mode,
   under no_grad, and returns (logits, labels).
3. calibrate.fit learns the temperature and per-class thresholds for a
   precision target.
4. ThresholdHead puts both after the network: one module, TorchScript-able,
   returning (decisions, calibrated probabilities); -1 means abstain.

Runs in a few seconds on a CPU.
"""

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset

import calibrate
from calibrate.torch import ThresholdHead, collect

torch.manual_seed(0)
rng = np.random.default_rng(0)
C, D = 4, 10
CLASSES = ["cat", "dog", "fox", "owl"]


def make_data(n):
    """Overlapping Gaussian classes: even a perfect model is unsure of some rows."""
    y = rng.integers(0, C, n)
    x = rng.normal(size=(n, D)) + 2.0 * np.eye(C, D)[y] * np.array([1.0, 1.2, 1.4, 1.8])[y, None]
    return torch.tensor(x, dtype=torch.float32), torch.tensor(y)


x_train, y_train = make_data(600)      # small: the network will overfit, overconfident
x_val, y_val = make_data(3000)         # held-out: for calibration only
x_test, y_test = make_data(3000)

# -- 1. a classifier whose last layer is Linear: its outputs are logits ---------
model = nn.Sequential(nn.Linear(D, 128), nn.ReLU(), nn.Linear(128, 128), nn.ReLU(),
                      nn.Linear(128, C))
loss_fn = nn.CrossEntropyLoss()         # takes logits: applies log_softmax itself
opt = torch.optim.Adam(model.parameters(), lr=3e-3)
train = DataLoader(TensorDataset(x_train, y_train), batch_size=100, shuffle=True)
for _ in range(60):
    for xb, yb in train:
        opt.zero_grad()
        loss_fn(model(xb), yb).backward()   # logits in, never softmax outputs
        opt.step()

# Why softmax outputs must not go into CrossEntropyLoss: it would apply
# softmax a second time.  The loss can then never reach 0 and its gradient
# vanishes exactly where the model is confidently wrong.
z = torch.tensor([[12.0, 0.0, 0.0, 0.0]], requires_grad=True)   # sure of class 0
wrong = torch.tensor([1])                                       # ... but it is class 1
right = torch.tensor([0])
good = loss_fn(z, wrong)
good.backward()
g_good = z.grad.abs().sum().item()
z.grad = None
bad = loss_fn(torch.softmax(z, dim=1), wrong)
bad.backward()
g_bad = z.grad.abs().sum().item()
floor = loss_fn(torch.softmax(z, dim=1), right).item()
print("CrossEntropyLoss wants logits:")
print(f"  confidently wrong row: loss on logits {good.item():.2f}, gradient {g_good:.3f}; "
      f"loss on softmax outputs {bad.item():.2f}, gradient {g_bad:.1e} (vanished)")
print(f"  confidently right row: loss on softmax outputs can never go below {floor:.3f}")
assert g_bad < 1e-3 * g_good and floor > 0.5

# -- 2. held-out logits: eval mode, no gradients -----------------------------------
val_loader = DataLoader(TensorDataset(x_val, y_val), batch_size=500)
val_logits, val_labels = collect(model, val_loader)
test_logits, test_labels = collect(model, DataLoader(TensorDataset(x_test, y_test),
                                                     batch_size=500))

# Probabilities from logits: softmax, never a logit reused as a probability.
# With the fitted temperature T they are softmax(logits / T).
raw_probs = torch.softmax(val_logits, dim=1)

# -- 3. temperature and thresholds for 90% precision per class ---------------------
cal = calibrate.fit(val_logits, val_labels, precision=0.9, confidence=0.95, classes=CLASSES)
T = cal.temperature
print(f"\ntemperature: {T:.3f}   (> 1: the network was overconfident)")
print(f"NLL  before {cal.summary['nll']['before']:.4f}  after {cal.summary['nll']['after']:.4f}")
print(f"ECE  before {cal.summary['ece']['before']:.2%}  after {cal.summary['ece']['after']:.2%}")
assert T > 1 and cal.summary["nll"]["after"] < cal.summary["nll"]["before"]
print("thresholds (calibrated probability of the argmax class):")
for name, row in zip(CLASSES, cal.summary["per_class"], strict=True):
    t = ("never" if row["threshold"] is None
         else "any" if row["threshold"] == 0 else f"{row['threshold']:.3f}")
    print(f"  {name}: {t:>6}  held-out precision {row['precision'] or 0:.3f}  "
          f"recall {row['recall'] or 0:.3f}  ({row['status']})")

# -- 4. deploy: model + ThresholdHead, scripted ------------------------------------
deployed = nn.Sequential(model, ThresholdHead(cal)).eval()
scripted = torch.jit.script(deployed)
with torch.no_grad():
    decisions, probs = scripted(x_test)

# The head is cal.predict / cal.predict_proba, inside the model.
assert torch.equal(decisions, torch.from_numpy(cal.predict(test_logits)))
assert torch.allclose(probs, torch.softmax(test_logits / T, dim=1), atol=1e-6)

kept = decisions >= 0
acc_all = (test_logits.argmax(1) == test_labels).float().mean().item()
prec = (decisions[kept] == test_labels[kept]).float().mean().item()
print(f"\ntest: accuracy of the raw argmax {acc_all:.3f}; with thresholds the model answers "
      f"{kept.float().mean().item():.1%} of rows, {prec:.3f} of them correctly, "
      f"and abstains (-1) on the rest")
for k, name in enumerate(CLASSES):
    pk = decisions == k
    if pk.any():
        print(f"  {name}: precision {(test_labels[pk] == k).float().mean().item():.3f} "
              f"on {int(pk.sum())} predictions")
assert prec >= 0.88
print("raw max softmax on held-out rows averages "
      f"{raw_probs.max(1).values.mean().item():.3f}; calibrated "
      f"{torch.softmax(val_logits / T, 1).max(1).values.mean().item():.3f}; "
      f"accuracy {(val_logits.argmax(1) == val_labels).float().mean().item():.3f}")
print("ok")
