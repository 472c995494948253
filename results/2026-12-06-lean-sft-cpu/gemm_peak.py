# Measurement script for results/2026-12-06-lean-sft-cpu.md: f32 and bf16 GEMM throughput
# of the default model's projection shapes at 950 rows, 2 threads.
import torch, time
torch.set_num_threads(2)
def bench(a,b,n=20):
    for _ in range(3): a@b
    t=time.perf_counter()
    for _ in range(n): a@b
    return (time.perf_counter()-t)/n
T=950
for (k,n) in [(576,1536),(1536,576),(576,576),(576,192)]:
    for dt in [torch.float32, torch.bfloat16]:
        a=torch.randn(T,k,dtype=dt); b=torch.randn(k,n,dtype=dt)
        s=bench(a,b); print(k,n,dt, f"{2*T*k*n/s/1e9:.0f} GFLOPS")
print(torch.backends.mkldnn.is_available(), hasattr(torch.backends.mkldnn,'matmul'))
try:
    torch.backends.mkldnn.matmul.fp32_precision="bf16"
    a=torch.randn(T,576); b=torch.randn(576,1536); s=bench(a,b); print("f32 w/ bf16 precision", f"{2*T*576*1536/s/1e9:.0f} GFLOPS")
except Exception as e: print(e)
