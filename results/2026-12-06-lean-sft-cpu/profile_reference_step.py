# Measurement script for results/2026-12-06-lean-sft-cpu.md: torch.profiler op table of one
# transformers + peft LoRA step (950 tokens, the last 100 targets). Arg: the GGUF file name in models/.
import torch, time, peft, sys
from transformers import AutoModelForCausalLM
torch.set_num_threads(2)
m = AutoModelForCausalLM.from_pretrained("/work/main/models", gguf_file=sys.argv[1], dtype=torch.float32)
m = peft.get_peft_model(m, peft.LoraConfig(r=16, lora_alpha=32, lora_dropout=0.0, target_modules=["q_proj","k_proj","v_proj","o_proj","gate_proj","up_proj","down_proj"], task_type="CAUSAL_LM"))
m.train()
ids = torch.randint(0, 49000, (1, 950))
labels = ids.clone(); labels[:, :850] = -100
def step():
    loss = m(input_ids=ids, labels=labels).loss
    loss.backward()
step()
t=time.time(); step(); print("step", time.time()-t)
from torch.profiler import profile, ProfilerActivity
with profile(activities=[ProfilerActivity.CPU]) as p:
    step()
print(p.key_averages().table(sort_by="self_cpu_time_total", row_limit=25))
