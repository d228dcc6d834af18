"""Step 1: clean the raw data (CSV with header x,y) and write it to stdout."""

import sys

with open(sys.argv[1], encoding="utf-8") as fh:
    header = fh.readline()
    rows = [line.strip().split(",") for line in fh if line.strip()]
print("x,y")
for x, y in rows:
    if x and y:
        print(f"{float(x):.3f},{float(y):.3f}")
