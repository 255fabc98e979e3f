"""Every CUDA source in kernels/gpu.py compiles, for float32 and float64, where nvcc is present.

CI has no GPU, so a typo in a kernel's CUDA C would otherwise wait for the next
machine with one. This test reads the ElementwiseKernel and ReductionKernel
definitions out of kernels/gpu.py (as text: neither CuPy nor a device is needed),
wraps each body in the loop CuPy would write around it, and compiles it to PTX
with nvcc. Where nvcc is missing it is skipped and says so.
"""
import ast
import pathlib
import shutil
import subprocess

import pytest

GPU_SOURCE = pathlib.Path(__file__).resolve().parents[1] / "kernels" / "gpu.py"
NVCC = shutil.which("nvcc")
C_TYPES = {"T": "T", "bool": "bool", "int32": "int", "int64": "long long",
           "float32": "float", "float64": "double"}


def kernel_definitions():
    """(kind, arguments, preamble) of every cupy.ElementwiseKernel / ReductionKernel call in
    gpu.py; a preamble (shared device functions) may be a module-level string constant."""
    tree = ast.parse(GPU_SOURCE.read_text())
    constants = {target.id: node.value.value for node in tree.body
                 if isinstance(node, ast.Assign) and isinstance(node.value, ast.Constant)
                 and isinstance(node.value.value, str)
                 for target in node.targets if isinstance(target, ast.Name)}

    def preamble(call):
        for keyword in call.keywords:
            if keyword.arg == "preamble":
                value = keyword.value
                return constants[value.id] if isinstance(value, ast.Name) else value.value
        return ""

    return [(node.func.attr, [ast.literal_eval(a) for a in node.args], preamble(node))
            for node in ast.walk(tree)
            if isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute)
            and node.func.attr in ("ElementwiseKernel", "ReductionKernel")]


def _params(text):
    """'raw T x, int32 n' -> [(raw, c_type, name), ...]"""
    params = []
    for part in filter(None, (p.strip() for p in text.split(","))):
        words = part.split()
        params.append((words[0] == "raw", C_TYPES[words[-2]], words[-1]))
    return params


def cuda_source(kind, args, dtype):
    """The kernel as CUDA C, roughly as CuPy generates it: one thread per output element."""
    inputs, outputs = _params(args[0]), _params(args[1])
    if kind == "ElementwiseKernel":
        operation, name = args[2], args[3]
        signature = [f"const {t}* {p}" if raw else f"const {t} {p}" for raw, t, p in inputs]
        signature += [f"{t}* {p}" if raw else f"{t}* {p}_out" for raw, t, p in outputs]
        bind = "".join(f"        {t}& {p} = {p}_out[i];\n" for raw, t, p in outputs if not raw)
        body = f"{bind}        {operation};\n"
    else:
        map_expr, reduce_expr, post_map_expr, identity, name = args[2:7]
        signature = [f"const {t} {p}" for _, t, p in inputs]
        signature += [f"{t}* {p}_out" for _, t, p in outputs]
        bind = "".join(f"    {t}& {p} = {p}_out[0];\n" for _, t, p in outputs)
        body = (f"        const T b = {map_expr};\n"
                f"        a = {reduce_expr};\n")
    loop = ("    for (long long i = blockIdx.x * (long long)blockDim.x + threadIdx.x; i < size;\n"
            "         i += (long long)blockDim.x * gridDim.x) {\n" + body + "    }\n")
    if kind == "ReductionKernel":
        loop = f"    T a = {identity};\n" + loop + bind + f"    {post_map_expr};\n"
    return (f'extern "C" __global__ void {name}({", ".join(signature + ["long long size"])}) {{\n'
            f"{loop}}}\n")


DEFINITIONS = kernel_definitions()


def test_gpu_py_defines_the_kernels_this_test_compiles():
    names = [args[3] if kind == "ElementwiseKernel" else args[6]
             for kind, args, _ in DEFINITIONS]
    assert len(names) >= 10 and len(set(names)) == len(names), names
    assert all(name.startswith("tinyae_") for name in names), names


@pytest.mark.skipif(NVCC is None, reason="nvcc is not installed here: the CUDA sources of "
                    "kernels/gpu.py are compiled only where it is")
@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_every_cuda_source_compiles(dtype, tmp_path):
    preambles = list(dict.fromkeys(p for _, _, p in DEFINITIONS if p))  # each once, in order
    c_type = {"float32": "float", "float64": "double"}[dtype]
    sources = [f"typedef {c_type} T;", *preambles]
    sources += [cuda_source(kind, args, dtype) for kind, args, _ in DEFINITIONS]
    path = tmp_path / f"gpu_{dtype}.cu"
    path.write_text("\n".join(sources))
    done = subprocess.run([NVCC, "--ptx", "-o", str(tmp_path / "gpu.ptx"), str(path)],
                          capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, (
        f"kernels/gpu.py: a CUDA source does not compile for {dtype}:\n{done.stderr}\n"
        f"--- generated source ---\n{path.read_text()}")
