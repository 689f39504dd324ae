//! The tokenizer and chat template, from the GGUF metadata alone.
//!
//! `tokenizer.ggml.*` describes a GPT-2 style byte-level BPE (`tokenizer.ggml.model` =
//! `gpt2`): the tokens in id order, their merges, their types (control tokens such as
//! `<|im_start|>` become special added tokens), and the pre-tokenizer (`smollm`: digits
//! one by one, then the GPT-2 split; `gpt2`: the GPT-2 split). The chat template must be
//! ChatML; anything else is refused at load rather than guessed. A template that adds a
//! default system turn when the conversation has none (SmolLM2's does) gets it here too.

use std::collections::HashMap;

use candle_core::quantized::gguf_file::Value;
use tokenizers::decoders::byte_level::ByteLevel as ByteLevelDecoder;
use tokenizers::models::bpe::{Vocab, BPE};
use tokenizers::pre_tokenizers::byte_level::ByteLevel;
use tokenizers::pre_tokenizers::digits::Digits;
use tokenizers::pre_tokenizers::sequence::Sequence;
use tokenizers::pre_tokenizers::PreTokenizerWrapper;
use tokenizers::{AddedToken, Tokenizer};

/// GGUF token type of control tokens (`<|im_start|>`, ...).
const CONTROL: i64 = 3;
/// GGUF token type of user-defined tokens.
const USER_DEFINED: i64 = 4;

/// A tokenizer that renders one user turn through the model's ChatML template.
pub struct ChatTokenizer {
    /// The tokenizer.
    pub tokenizer: Tokenizer,
    /// The default system turn the template adds, if any.
    pub system: Option<String>,
    /// Tokens that end the reply (`<|im_end|>`, the end-of-sequence token, ...).
    pub stop: Vec<u32>,
}

fn strings(md: &HashMap<String, Value>, key: &str) -> Result<Vec<String>, String> {
    let v = md
        .get(key)
        .ok_or_else(|| format!("no {key} in the metadata"))?
        .to_vec()
        .map_err(|_| format!("{key} is not an array"))?;
    v.iter()
        .map(|s| {
            s.to_string()
                .cloned()
                .map_err(|_| format!("{key} holds a non-string"))
        })
        .collect()
}

fn integer(v: &Value) -> Option<i64> {
    v.to_i32()
        .map(i64::from)
        .or_else(|_| v.to_u32().map(i64::from))
        .or_else(|_| v.to_u64().map(|x| x as i64))
        .or_else(|_| v.to_i64())
        .ok()
}

/// The default system prompt of a ChatML template, or an error if it is not ChatML.
pub fn chatml_system(template: &str) -> Result<Option<String>, String> {
    let text = template.replace("\\n", "\n");
    let flat: String = text
        .chars()
        .filter(|c| !c.is_whitespace() || *c == '\n')
        .map(|c| if c == '"' { '\'' } else { c })
        .collect();
    let turn = "'<|im_start|>'+message['role']+'\n'+message['content']+'<|im_end|>'+'\n'";
    let turn_alt = "'<|im_start|>'+message['role']+'\n'+message['content']+'<|im_end|>\n'";
    if !(flat.contains(turn) || flat.contains(turn_alt))
        || !flat.contains("'<|im_start|>assistant\n'")
    {
        return Err(
            "tokenizer.chat_template is not ChatML (<|im_start|>role\\n...<|im_end|>); \
             other templates are not supported"
                .into(),
        );
    }
    const SYS: &str = "<|im_start|>system\n";
    match text.find(SYS) {
        None => Ok(None),
        Some(i) => {
            let rest = &text[i + SYS.len()..];
            let end = rest
                .find("<|im_end|>")
                .ok_or("the template's system turn has no <|im_end|>")?;
            if !flat.contains("messages[0]['role']!='system'") {
                return Err("the template's system turn is not the usual default one".into());
            }
            Ok(Some(rest[..end].to_string()))
        }
    }
}

impl ChatTokenizer {
    /// Build the tokenizer of a model with `vocab` embedding rows from its metadata.
    pub fn from_gguf(md: &HashMap<String, Value>, vocab: usize) -> Result<ChatTokenizer, String> {
        let kind = md
            .get("tokenizer.ggml.model")
            .and_then(|v| v.to_string().ok())
            .ok_or("no tokenizer.ggml.model")?;
        if kind != "gpt2" {
            return Err(format!(
                "tokenizer.ggml.model {kind:?}: only byte-level BPE (gpt2) is supported"
            ));
        }
        let pre = md
            .get("tokenizer.ggml.pre")
            .and_then(|v| v.to_string().ok())
            .map(String::as_str)
            .unwrap_or("gpt2");
        let byte_level = ByteLevel::new(false, true, true);
        let pre_tokenizer: PreTokenizerWrapper = match pre {
            "smollm" => Sequence::new(vec![
                PreTokenizerWrapper::Digits(Digits::new(true)),
                PreTokenizerWrapper::ByteLevel(byte_level),
            ])
            .into(),
            "gpt2" => byte_level.into(),
            other => return Err(format!("tokenizer.ggml.pre {other:?} is not supported")),
        };

        let tokens = strings(md, "tokenizer.ggml.tokens")?;
        if tokens.len() != vocab {
            return Err(format!(
                "{} tokens, but the embeddings have {vocab} rows",
                tokens.len()
            ));
        }
        let map: Vocab = tokens
            .iter()
            .enumerate()
            .map(|(i, t)| (t.clone(), i as u32))
            .collect();
        if map.len() != tokens.len() {
            return Err("tokenizer.ggml.tokens has duplicates".into());
        }
        let merges = strings(md, "tokenizer.ggml.merges")?
            .into_iter()
            .map(|m| {
                m.split_once(' ')
                    .map(|(a, b)| (a.to_string(), b.to_string()))
                    .ok_or_else(|| format!("merge {m:?} is not two tokens"))
            })
            .collect::<Result<Vec<_>, _>>()?;
        let bpe = BPE::builder()
            .vocab_and_merges(map, merges)
            .build()
            .map_err(|e| format!("building the BPE: {e}"))?;
        let mut tokenizer = Tokenizer::new(bpe);
        tokenizer.with_pre_tokenizer(Some(pre_tokenizer));
        tokenizer.with_decoder(Some(ByteLevelDecoder::default()));

        let types: Vec<i64> = match md.get("tokenizer.ggml.token_type") {
            None => Vec::new(),
            Some(v) => v
                .to_vec()
                .map_err(|_| "tokenizer.ggml.token_type is not an array")?
                .iter()
                .map(|t| integer(t).ok_or("tokenizer.ggml.token_type holds a non-integer"))
                .collect::<Result<_, _>>()?,
        };
        let mut special = Vec::new();
        let mut added = Vec::new();
        for (t, ty) in tokens.iter().zip(&types) {
            match *ty {
                CONTROL => special.push(AddedToken::from(t.clone(), true)),
                USER_DEFINED => added.push(AddedToken::from(t.clone(), false)),
                _ => {}
            }
        }
        tokenizer
            .add_special_tokens(special)
            .map_err(|e| format!("adding the control tokens: {e}"))?;
        tokenizer
            .add_tokens(added)
            .map_err(|e| format!("adding the user-defined tokens: {e}"))?;

        let template = md
            .get("tokenizer.chat_template")
            .and_then(|v| v.to_string().ok())
            .ok_or("no tokenizer.chat_template in the metadata")?;
        let system = chatml_system(template)?;

        let mut stop = Vec::new();
        if let Some(eos) = md.get("tokenizer.ggml.eos_token_id").and_then(integer) {
            match u32::try_from(eos).ok().filter(|&e| (e as usize) < vocab) {
                Some(e) => stop.push(e),
                None => return Err(format!("eos token id {eos} is not in the vocabulary")),
            }
        }
        for t in ["<|im_end|>", "<|endoftext|>"] {
            if let Some(id) = tokenizer.token_to_id(t) {
                if !stop.contains(&id) {
                    stop.push(id);
                }
            }
        }
        if tokenizer.token_to_id("<|im_start|>").is_none()
            || tokenizer.token_to_id("<|im_end|>").is_none()
        {
            return Err("the vocabulary has no <|im_start|>/<|im_end|> tokens".into());
        }
        Ok(ChatTokenizer {
            tokenizer,
            system,
            stop,
        })
    }

    /// The text the model reads for one user turn.
    pub fn chat_prompt(&self, user: &str) -> String {
        let mut s = String::new();
        if let Some(sys) = &self.system {
            s.push_str("<|im_start|>system\n");
            s.push_str(sys);
            s.push_str("<|im_end|>\n");
        }
        s.push_str("<|im_start|>user\n");
        s.push_str(user);
        s.push_str("<|im_end|>\n<|im_start|>assistant\n");
        s
    }

    /// The tokens of [`ChatTokenizer::chat_prompt`].
    pub fn encode_chat(&self, user: &str) -> Result<Vec<u32>, String> {
        self.tokenizer
            .encode(self.chat_prompt(user), false)
            .map(|e| e.get_ids().to_vec())
            .map_err(|e| format!("tokenizing the prompt: {e}"))
    }

    /// Whether `id` ends the reply.
    pub fn is_stop(&self, id: u32) -> bool {
        self.stop.contains(&id)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const SMOL: &str = "{% for message in messages %}{% if loop.first and messages[0]['role'] != 'system' %}{{ '<|im_start|>system\nYou are a helpful AI assistant named SmolLM, trained by Hugging Face<|im_end|>\n' }}{% endif %}{{'<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}";

    /// Bytes as GPT-2's byte-level alphabet writes them: 'Ċ' is a newline.
    const TOKENS: [&str; 32] = [
        "<|endoftext|>",
        "<|im_start|>",
        "<|im_end|>",
        "s",
        "y",
        "t",
        "e",
        "m",
        "u",
        "r",
        "a",
        "n",
        "i",
        "h",
        "Ċ",
        "sy",
        "sys",
        "te",
        "tem",
        "system",
        "us",
        "er",
        "user",
        "as",
        "ass",
        "is",
        "ist",
        "assist",
        "an",
        "ant",
        "assistant",
        "hi",
    ];

    fn tiny_metadata(template: &str) -> HashMap<String, Value> {
        let tokens = TOKENS;
        let merges = [
            "s y",
            "sy s",
            "t e",
            "te m",
            "sys tem",
            "u s",
            "e r",
            "us er",
            "a s",
            "as s",
            "i s",
            "is t",
            "ass ist",
            "a n",
            "an t",
            "assist ant",
            "h i",
        ];
        let mut md = HashMap::new();
        let s = |v: &str| Value::String(v.to_string());
        md.insert("tokenizer.ggml.model".into(), s("gpt2"));
        md.insert("tokenizer.ggml.pre".into(), s("smollm"));
        md.insert(
            "tokenizer.ggml.tokens".into(),
            Value::Array(tokens.iter().map(|t| s(t)).collect()),
        );
        md.insert(
            "tokenizer.ggml.merges".into(),
            Value::Array(merges.iter().map(|t| s(t)).collect()),
        );
        md.insert(
            "tokenizer.ggml.token_type".into(),
            Value::Array(
                tokens
                    .iter()
                    .enumerate()
                    .map(|(i, _)| Value::I32(if i < 3 { 3 } else { 1 }))
                    .collect(),
            ),
        );
        md.insert("tokenizer.ggml.eos_token_id".into(), Value::U32(2));
        md.insert("tokenizer.chat_template".into(), s(template));
        md
    }

    #[test]
    fn a_chatml_prompt_becomes_the_special_tokens_and_back() {
        let md = tiny_metadata(SMOL);
        let n = TOKENS.len();
        let t = ChatTokenizer::from_gguf(&md, n).unwrap();
        assert_eq!(
            t.system.as_deref(),
            Some("You are a helpful AI assistant named SmolLM, trained by Hugging Face")
        );
        let t = ChatTokenizer { system: None, ..t };
        let ids = t.encode_chat("hi").unwrap();
        let name = |id: u32| t.tokenizer.id_to_token(id).unwrap();
        let names: Vec<String> = ids.iter().map(|&i| name(i)).collect();
        assert_eq!(
            names,
            [
                "<|im_start|>",
                "user",
                "Ċ",
                "hi",
                "<|im_end|>",
                "Ċ",
                "<|im_start|>",
                "assistant",
                "Ċ"
            ]
            .map(String::from),
            "{ids:?}"
        );
        assert_eq!(
            t.tokenizer.decode(&ids, false).unwrap(),
            t.chat_prompt("hi")
        );
        assert!(t.is_stop(2) && t.is_stop(0) && !t.is_stop(1));
    }

    #[test]
    fn other_templates_are_refused() {
        let llama3 = "{% for m in messages %}<|start_header_id|>{{ m['role'] }}<|end_header_id|>\n\n{{ m['content'] }}<|eot_id|>{% endfor %}";
        let e = ChatTokenizer::from_gguf(&tiny_metadata(llama3), TOKENS.len())
            .err()
            .unwrap();
        assert!(e.contains("not ChatML"), "{e}");
        let plain = "{% for message in messages %}{{'<|im_start|>' + message['role'] + '\\n' + message['content'] + '<|im_end|>' + '\\n'}}{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\\n' }}{% endif %}";
        assert_eq!(chatml_system(plain).unwrap(), None);
        let e = ChatTokenizer::from_gguf(&tiny_metadata(SMOL), 40)
            .err()
            .unwrap();
        assert!(e.contains("embeddings"), "{e}");
    }
}
