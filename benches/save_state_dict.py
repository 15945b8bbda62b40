"""Times one checkpoint save of a ~SIZE_MIB state dict (issue 15's
`torch.save` / `safetensors.save_file` rows of benches/output_write.sh).

    python benches/save_state_dict.py torch|safetensors PATH SIZE_MIB

Builds the state dict in memory first (64 float32 tensors), then times only
the save (open, write, close) and prints the nanoseconds it took.
"""

import sys
import time

import torch


def main() -> None:
    kind, path, size_mib = sys.argv[1], sys.argv[2], int(sys.argv[3])
    per_tensor = (size_mib << 20) // 64 // 4
    state = {f"layer{i}.weight": torch.full((per_tensor,), float(i)) for i in range(64)}
    start = time.perf_counter_ns()
    if kind == "torch":
        torch.save(state, path)
    elif kind == "safetensors":
        from safetensors.torch import save_file

        save_file(state, path)
    else:
        raise SystemExit(f"unknown kind {kind!r}: torch or safetensors")
    print(time.perf_counter_ns() - start)


if __name__ == "__main__":
    main()
