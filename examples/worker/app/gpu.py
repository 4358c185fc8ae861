"""ML group probe: `python -m app.gpu`. Checks the CUDA runtime wheel is installed (no GPU needed)."""
import pathlib
import sys

import numpy
import nvidia.cuda_runtime

lib = pathlib.Path(list(nvidia.cuda_runtime.__path__)[0]) / "lib"
found = sorted(p.name for p in lib.glob("libcudart.so*"))
if not found:
    print("no libcudart in the CUDA runtime wheel", file=sys.stderr)
    sys.exit(1)
print(f"numpy {numpy.__version__}, {found[0]}")
