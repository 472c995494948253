//! `coe model inspect`: a model's view of a prompt — its token ids and the K most likely
//! next tokens with their logits. The raw text is encoded without BOS or template (DESIGN
//! §8) so the ids can be compared with any tokenizer's; `--chat` wraps it as a user turn
//! with the generation prompt. `--json` is the contract the parity tests rely on.
use crate::config::ModelSection;
use crate::model::chat::{Message, Role};
use crate::model::loader::load_for_inference;
use serde::Serialize;
use std::process::ExitCode;
use tch::{Kind, Tensor};

#[derive(Debug, Serialize)]
struct TopToken {
    id: u32,
    token: String,
    logit: f64,
}

#[derive(Debug, Serialize)]
struct Inspection {
    prompt_ids: Vec<u32>,
    top: Vec<TopToken>,
}

/// The options of `coe model inspect`.
#[derive(Debug, Clone)]
pub struct InspectArgs<'a> {
    pub model: &'a str,
    pub prompt: &'a str,
    pub top: usize,
    pub json: bool,
    pub chat: bool,
}

pub fn inspect(section: &ModelSection, args: &InspectArgs<'_>) -> anyhow::Result<ExitCode> {
    let section = ModelSection {
        path: args.model.to_string(),
        // The model as named, without an adapter the config may carry.
        adapter: None,
        ..section.clone()
    };
    let loaded = load_for_inference(&section, None)?;
    let tok = &loaded.tokenizer;
    let text = if args.chat {
        loaded
            .chat
            .render(&[Message::new(Role::User, args.prompt)], true)
    } else {
        args.prompt.to_string()
    };
    let prompt_ids = tok.encode(&text, false)?;
    anyhow::ensure!(
        !prompt_ids.is_empty(),
        "the prompt {:?} encodes to no tokens; give some text",
        args.prompt
    );
    let vocab = loaded.model.config().vocab_size;
    let k = args.top.clamp(1, vocab);
    let top = {
        let _guard = tch::no_grad_guard();
        let ids: Vec<i64> = prompt_ids.iter().map(|&i| i64::from(i)).collect();
        let n = ids.len() as i64;
        let input = Tensor::from_slice(&ids)
            .to_device(loaded.device)
            .view([1, n]);
        let positions = Tensor::arange(n, (Kind::Int64, loaded.device)).view([1, n]);
        let hidden = loaded
            .model
            .forward_hidden(&input, &positions, None, None)?; // [1, T, D]
        let last = loaded.model.logits(&hidden.select(1, n - 1).select(0, 0)); // [V]
        let (values, indices) = last.to_kind(Kind::Float).topk(k as i64, 0, true, true);
        let values = Vec::<f32>::try_from(values.to_device(tch::Device::Cpu))?;
        let indices = Vec::<i64>::try_from(indices.to_device(tch::Device::Cpu))?;
        let mut top = Vec::with_capacity(k);
        for (id, logit) in indices.into_iter().zip(values) {
            let id = u32::try_from(id)?;
            top.push(TopToken {
                id,
                token: tok.decode(&[id])?,
                logit: f64::from(logit),
            });
        }
        top
    };
    let result = Inspection { prompt_ids, top };
    if args.json {
        println!("{}", serde_json::to_string(&result)?);
    } else {
        print!("{}", table(&result));
    }
    Ok(ExitCode::SUCCESS)
}

fn table(r: &Inspection) -> String {
    let ids: Vec<String> = r.prompt_ids.iter().map(u32::to_string).collect();
    let mut out = format!("prompt ids ({}): {}\n", r.prompt_ids.len(), ids.join(" "));
    out.push_str(&format!(
        "{:>4}  {:>6}  {:>10}  token\n",
        "rank", "id", "logit"
    ));
    for (rank, t) in r.top.iter().enumerate() {
        out.push_str(&format!(
            "{:>4}  {:>6}  {:>10.4}  {:?}\n",
            rank + 1,
            t.id,
            t.logit,
            t.token
        ));
    }
    out
}
