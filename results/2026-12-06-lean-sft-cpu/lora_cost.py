# Measurement script for results/2026-12-06-lean-sft-cpu.md: forward + backward time with
# all-linear LoRA r16 ("all") or with no adapter, only a bias after the embedding ("embed"),
# the head applied to the 100 target positions only.
import torch, time, peft, sys
from transformers import AutoModelForCausalLM
torch.set_num_threads(2)
base = AutoModelForCausalLM.from_pretrained("/work/main/models", gguf_file="SmolLM2-135M-Instruct.Q4_1.gguf", dtype=torch.float32)
ids = torch.randint(0, 49000, (1, 950))
labels = ids.clone(); labels[:, :850] = -100
def timeit(m, n=3):
    def step():
        out = m(input_ids=ids).logits if False else None
        h = m.model(input_ids=ids).last_hidden_state if hasattr(m,'model') and not isinstance(m, peft.PeftModel) else m.base_model.model.model(input_ids=ids).last_hidden_state
        logits = (m.lm_head if not isinstance(m, peft.PeftModel) else m.base_model.model.lm_head)(h[:, 850:])
        loss = torch.nn.functional.cross_entropy(logits[0], ids[0, 850:])
        loss.backward()
    step()
    ts=[]
    for _ in range(n):
        t=time.perf_counter(); step(); ts.append(time.perf_counter()-t)
    return sorted(ts)[len(ts)//2]
which = sys.argv[1]
if which == "all":
    m = peft.get_peft_model(base, peft.LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=["q_proj","k_proj","v_proj","o_proj","gate_proj","up_proj","down_proj"]))
elif which == "embed":
    for p in base.parameters(): p.requires_grad_(False)
    emb = base.model.embed_tokens
    class Wrap(torch.nn.Module):
        def __init__(s, e): super().__init__(); s.e=e; s.bias=torch.nn.Parameter(torch.zeros(576))
        def forward(s, x): return s.e(x)+s.bias
    base.model.embed_tokens = Wrap(emb)
    m = base
print(which, timeit(m))
