"""Step 3: evaluate the model on the test data and write a report."""

import json
import sys

model_path, test_path, report_path = sys.argv[1:4]
with open(model_path, encoding="utf-8") as fh:
    model = json.load(fh)
with open(test_path, encoding="utf-8") as fh:
    fh.readline()
    test = [tuple(map(float, line.split(","))) for line in fh if line.strip()]
mse = sum((model["w"] * x - y) ** 2 for x, y in test) / len(test)
with open(report_path, "w", encoding="utf-8") as fh:
    fh.write(f"model w={model['w']} (lr={model['lr']}, n={model['n']})\n")
    fh.write(f"test mse={mse:.6f}\n")
print(f"mse={mse:.6f}")
