"""A binary problem done both ways: one logit + BCE, two logits + CrossEntropy.

    python examples/binary_two_ways.py

Two heads for the same yes/no question:

* one logit z, trained with BCEWithLogitsLoss: p(yes) = sigmoid(z);
* two logits (z0, z1), trained with CrossEntropyLoss: p(yes) = softmax(z)_1
  = sigmoid(z1 - z0).

CrossEntropy on two logits is BCE on their difference d = z1 - z0, so both
fit the same model: here logistic regression on fixed features, trained to
its optimum, where d equals z up to the optimiser's tolerance.  Tell
calibrate the two columns are one binary problem (task="binary") and it
works on d: same temperature, same threshold, identical decisions.  Left to
task="auto", two columns mean a 2-class softmax problem, which has a
threshold per class and may abstain: a different rule.

Runs in a few seconds on a CPU.
"""

import numpy as np
import torch
from torch import nn

import calibrate
from calibrate.torch import ThresholdHead

torch.manual_seed(0)
rng = np.random.default_rng(2)
torch.set_default_dtype(torch.float64)       # tight optimum: the two fits agree closely


def make_data(n):
    x = rng.normal(size=(n, 2))
    feats = np.column_stack([x, x ** 2, x[:, :1] * x[:, 1:], np.sin(2 * x)])
    logit = 2.0 * x[:, 0] - 1.5 * x[:, 1] ** 2 + 1.0 + np.sin(2 * x[:, 1])
    y = (rng.random(n) < 1 / (1 + np.exp(-logit))).astype(np.int64)
    return torch.tensor(feats), torch.tensor(y)


x_train, y_train = make_data(3000)
x_val, y_val = make_data(4000)
x_test, y_test = make_data(4000)
F = x_train.shape[1]


def train(model, loss_fn, target):
    opt = torch.optim.LBFGS(model.parameters(), lr=1, max_iter=500, tolerance_grad=1e-12,
                            tolerance_change=1e-15, history_size=50,
                            line_search_fn="strong_wolfe")

    def closure():
        opt.zero_grad()
        loss = loss_fn(model(x_train), target)
        loss.backward()
        return loss
    for _ in range(5):
        opt.step(closure)
    return model.eval()


one = train(nn.Linear(F, 1), lambda out, y: nn.functional.binary_cross_entropy_with_logits(
    out[:, 0], y), y_train.double())
two = train(nn.Linear(F, 2), nn.CrossEntropyLoss(), y_train)

with torch.no_grad():
    z_val, z_test = one(x_val), one(x_test)           # (N, 1): one logit
    zz_val, zz_test = two(x_val), two(x_test)         # (N, 2): two logits

d_test = zz_test[:, 1] - zz_test[:, 0]
print(f"largest |z - (z1 - z0)| on test rows: {(z_test[:, 0] - d_test).abs().max().item():.1e}")

cal_one = calibrate.fit(z_val, y_val, precision=0.9)                   # (N, 1): binary
cal_two = calibrate.fit(zz_val, y_val, precision=0.9, task="binary")  # d = z1 - z0
assert cal_one.task == cal_two.task == "binary"
print(f"temperature  one logit {cal_one.temperature:.6f}   two logits {cal_two.temperature:.6f}")
print(f"threshold    one logit {cal_one.thresholds['global']:.6f}   "
      f"two logits {cal_two.thresholds['global']:.6f}")

dec_one = cal_one.predict(z_test)
dec_two = cal_two.predict(zz_test)
same = (dec_one == dec_two).mean()
print(f"test decisions identical: {same:.2%} of {len(dec_one)} rows; "
      f"{dec_one.mean():.1%} predicted positive, precision "
      f"{y_test.numpy()[dec_one == 1].mean():.3f}")
assert np.array_equal(dec_one, dec_two)
assert abs(cal_one.temperature / cal_two.temperature - 1) < 1e-5

# Deployed, both heads give the same decisions too.
h_one, h_two = ThresholdHead(cal_one), ThresholdHead(cal_two)
assert torch.equal(h_one(z_test)[0], h_two(zz_test)[0])
assert torch.allclose(h_one(z_test)[1], h_two(zz_test)[1], atol=1e-5)

# And on one model, the two-column path *is* the one-logit path on d, exactly.
exact = calibrate.fit((zz_val[:, 1] - zz_val[:, 0]), y_val, precision=0.9)
assert exact.temperature == cal_two.temperature
assert exact.decision_thresholds == cal_two.decision_thresholds
assert np.array_equal(exact.predict(d_test), cal_two.predict(zz_test))

# Without task="binary", two columns are a 2-class softmax problem.
as_softmax = calibrate.fit(zz_val, y_val, precision=0.9)
print(f"two columns with task auto: {as_softmax.task}, C = 2, per-class thresholds "
      f"{[None if t is None else round(t, 3) for t in as_softmax.thresholds['per_class']]}; "
      f"abstains on {(as_softmax.predict(zz_test) == -1).mean():.1%} of test rows")
assert as_softmax.task == "multiclass"
print("ok")
