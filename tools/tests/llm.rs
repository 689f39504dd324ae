//! `grid worker generate` for real: SmolLM2-135M-Instruct (Q4_1 GGUF) through our llama
//! forward pass on candle, with PEFT LoRA adapters applied per request (feature `llm`).
//!
//! Needs the model file: `python3 tools/models_fetch.py --llm .cache/models` and
//! `GRID_MODELS=.cache/models`. Without it the test fails loudly; it never skips.

use std::io::{BufReader, BufWriter};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use grid_genome::generate::protocol::{
    AdapterRef, Finished, GenerateRequest, ModelInfo, WorkerFrame, MAX_RESPONSE,
};
use grid_genome::package::{write_llama_adapter, LlamaAdapterSpec, LlamaShape, SMOLLM2_135M};
use grid_genome::pipe::{read_value, write_value};
use grid_test_support::TempDir;

/// Where the test model is: `$GRID_MODELS/smollm2-135m-instruct/...gguf`.
fn model_path() -> PathBuf {
    let dir = std::env::var_os("GRID_MODELS").unwrap_or_else(|| {
        panic!(
            "GRID_MODELS is not set: run `python3 tools/models_fetch.py --llm .cache/models` \
             and set GRID_MODELS=.cache/models"
        )
    });
    let path = PathBuf::from(dir)
        .join("smollm2-135m-instruct")
        .join("SmolLM2-135M-Instruct.Q4_1.gguf");
    assert!(
        path.is_file(),
        "{} is missing: run `python3 tools/models_fetch.py --llm $GRID_MODELS`",
        path.display()
    );
    path
}

struct Worker {
    child: Child,
    stdin: BufWriter<ChildStdin>,
    stdout: BufReader<ChildStdout>,
    info: ModelInfo,
}

impl Drop for Worker {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// One request's frames: each token piece with when it arrived, and the final frame
/// with when it arrived.
struct Run {
    tokens: Vec<(String, Instant)>,
    done: Finished,
    done_at: Instant,
}

fn request(prompt: &str, max_tokens: u32, temperature: f32, seed: u64) -> GenerateRequest {
    GenerateRequest {
        prompt: prompt.into(),
        max_tokens,
        temperature,
        seed,
        adapter: None,
        context_limit: None,
    }
}

fn adapter(hash: &str, dir: &Path) -> Option<AdapterRef> {
    Some(AdapterRef {
        hash: hash.into(),
        dir: dir.to_path_buf(),
    })
}

impl Worker {
    /// Start the worker (default weights); its first frame must be `Ready`.
    fn start() -> Worker {
        Worker::start_with(&[])
    }

    /// Start the worker with extra arguments.
    fn start_with(args: &[&str]) -> Worker {
        let mut child = Command::new(env!("CARGO_BIN_EXE_grid"))
            .args(["worker", "generate", "--model"])
            .arg(model_path())
            .args(args)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::inherit())
            .spawn()
            .expect("start grid worker generate");
        // A hung worker must not hang the test run: kill it after a generous bound.
        let pid = child.id();
        std::thread::spawn(move || {
            std::thread::sleep(Duration::from_secs(600));
            let _ = Command::new("kill").arg(pid.to_string()).status();
        });
        let stdin = BufWriter::new(child.stdin.take().unwrap());
        let mut stdout = BufReader::new(child.stdout.take().unwrap());
        let first: WorkerFrame = read_value(&mut stdout, MAX_RESPONSE)
            .expect("read the first frame")
            .expect("the worker ended before Ready");
        let WorkerFrame::Ready(info) = first else {
            panic!("the first frame is not Ready: {first:?}")
        };
        Worker {
            child,
            stdin,
            stdout,
            info,
        }
    }

    /// Send `req`; its frames, or the `Failed` reason.
    fn send(&mut self, req: &GenerateRequest) -> Result<Run, String> {
        write_value(&mut self.stdin, req).expect("send request");
        let mut tokens = Vec::new();
        loop {
            let frame: WorkerFrame = read_value(&mut self.stdout, MAX_RESPONSE)
                .expect("read frame")
                .expect("worker ended before the final frame");
            match frame {
                WorkerFrame::Token(t) => tokens.push((t, Instant::now())),
                WorkerFrame::Done(done) => {
                    return Ok(Run {
                        tokens,
                        done,
                        done_at: Instant::now(),
                    })
                }
                WorkerFrame::Failed(e) => {
                    assert!(tokens.is_empty(), "Failed after tokens: {e}");
                    return Err(e);
                }
                WorkerFrame::Ready(_) => panic!("a second Ready"),
            }
        }
    }

    fn generate(&mut self, req: &GenerateRequest) -> Run {
        self.send(req)
            .unwrap_or_else(|e| panic!("generation failed: {e}"))
    }
}

const PROMPT: &str = "Write a short story about a lighthouse keeper.";

#[test]
fn generate_streams_is_seeded_and_respects_max_tokens() {
    let mut w = Worker::start();
    eprintln!("ready: {:?}", w.info);
    assert_eq!(w.info.architecture, "llama");
    assert_eq!(w.info.context_tokens, 8192);
    assert!(!w.info.name.is_empty());

    // Tokens stream: several token frames, the first well before the final frame, and
    // together they are the final text.
    let a = w.generate(&request(PROMPT, 32, 0.8, 7));
    eprintln!("seed 7: {:?} ({:?})", a.done.text, a.done);
    assert!(a.tokens.len() >= 2, "{} token frames", a.tokens.len());
    let first_at = a.tokens[0].1;
    assert!(first_at < a.done_at);
    assert!(
        a.done_at - first_at > Duration::from_millis(1),
        "all frames came together: {:?}",
        a.done_at - first_at
    );
    let joined: String = a.tokens.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(joined, a.done.text);
    assert_eq!(a.done.token_frames as usize, a.tokens.len());
    assert!(a.done.completion_tokens <= 32, "{:?}", a.done);
    assert!(a.done.prompt_tokens > 0, "{:?}", a.done);
    assert_eq!(a.done.adapter, None);

    // The same seed gives the same text, also after other requests ran in between.
    let other = w.generate(&request(PROMPT, 32, 0.8, 8));
    eprintln!("seed 8: {:?}", other.done.text);
    assert_ne!(other.done.text, a.done.text, "another seed, another text");
    let again = w.generate(&request(PROMPT, 32, 0.8, 7));
    assert_eq!(again.done.text, a.done.text);
    let greedy = w.generate(&request(PROMPT, 16, 0.0, 1));
    let greedy2 = w.generate(&request(PROMPT, 16, 0.0, 2));
    eprintln!("greedy: {:?}", greedy.done.text);
    assert_eq!(
        greedy.done.text, greedy2.done.text,
        "greedy ignores the seed"
    );

    // max_tokens is respected: a story does not end in 5 tokens.
    let short = w.generate(&request(PROMPT, 5, 0.8, 7));
    eprintln!("max 5: {:?} ({:?})", short.done.text, short.done);
    assert_eq!(short.done.completion_tokens, 5, "{:?}", short.done);
    assert!(
        short.tokens.len() <= 5,
        "{} token frames",
        short.tokens.len()
    );
    assert_eq!(short.done.finish_reason, "length", "{:?}", short.done);
    assert!(a.done.text.starts_with(&short.done.text));

    // Characters made of several tokens come whole: no frame ends inside one.
    let sea = w.generate(&request(
        "Reply with five emoji about the sea 🌊.",
        24,
        0.0,
        1,
    ));
    eprintln!(
        "emoji: {:?} ({} frames, {:?})",
        sea.done.text,
        sea.tokens.len(),
        sea.done
    );
    let joined: String = sea.tokens.iter().map(|(t, _)| t.as_str()).collect();
    assert_eq!(joined, sea.done.text);
    assert!(!sea.done.text.is_empty());
    assert!(
        sea.tokens.iter().all(|(t, _)| !t.contains('\u{FFFD}')),
        "a frame holds a broken character: {:?}",
        sea.tokens
    );
    assert!(sea.tokens.len() as u32 <= sea.done.completion_tokens);

    // A bad request fails alone; the worker goes on.
    let e = w
        .send(&request(PROMPT, 0, 0.0, 1))
        .err()
        .expect("max_tokens 0 fails");
    assert!(e.contains("max_tokens"), "{e}");
    let e = w
        .send(&request(PROMPT, 4, f32::NAN, 1))
        .err()
        .expect("NaN fails");
    assert!(e.contains("temperature"), "{e}");
    let too_long = "lighthouse ".repeat(9000);
    let e = w
        .send(&request(&too_long, 4, 0.0, 1))
        .err()
        .expect("too long fails");
    assert!(e.contains("context holds 8192"), "{e}");
    // The memory the node granted bounds the context: 16 tokens do not hold this prompt.
    let e = w
        .send(&GenerateRequest {
            context_limit: Some(16),
            ..request(PROMPT, 4, 0.0, 1)
        })
        .err()
        .expect("over the granted context fails");
    assert!(e.contains("16 tokens of context"), "{e}");
    // The figure the node plans requests with: f32 keys and values of 30 layers × 3
    // heads × 64 (46,080 B) plus the scratch of a 256-token prompt chunk.
    assert_eq!(w.info.bytes_per_context_token, 46_080 + 9 * 256 * 4 * 3);
    let granted = GenerateRequest {
        context_limit: Some(PROMPT.len() as u32 + 64 + 16),
        ..request(PROMPT, 16, 0.0, 1)
    };
    assert_eq!(w.generate(&granted).done.text, greedy.done.text);
    let greedy3 = w.generate(&request(PROMPT, 16, 0.0, 3));
    assert_eq!(greedy3.done.text, greedy.done.text);
}

#[test]
fn adapters_apply_per_request_and_leave_the_base_alone() {
    let tmp = TempDir::new("llm-adapters");
    let strong_dir = tmp.path().join("strong");
    let zero_dir = tmp.path().join("zero");
    let spec = LlamaAdapterSpec {
        shape: SMOLLM2_135M,
        r: 8,
        alpha: 16.0,
        strength: 1.0,
        seed: 11,
    };
    write_llama_adapter(&strong_dir, &spec).unwrap();
    write_llama_adapter(
        &zero_dir,
        &LlamaAdapterSpec {
            strength: 0.0,
            ..spec
        },
    )
    .unwrap();
    let mut w = Worker::start();
    let greedy = |adapter: Option<AdapterRef>| GenerateRequest {
        adapter,
        ..request(PROMPT, 24, 0.0, 1)
    };

    let base = w.generate(&greedy(None)).done;
    eprintln!("base: {:?}", base.text);

    let strong = w.generate(&greedy(adapter("strong", &strong_dir))).done;
    eprintln!("strong adapter: {:?} ({:?})", strong.text, strong);
    assert_ne!(
        strong.text, base.text,
        "a strong adapter changes the output"
    );
    assert_eq!(strong.adapter.as_deref(), Some("strong"));

    let zero = w.generate(&greedy(adapter("zero", &zero_dir))).done;
    assert_eq!(
        zero.text, base.text,
        "a zero adapter (B = 0) changes nothing"
    );
    assert_eq!(zero.adapter.as_deref(), Some("zero"));

    let base_again = w.generate(&greedy(None)).done;
    assert_eq!(
        base_again.text, base.text,
        "no adapter leaks into the next request"
    );

    let strong_again = w.generate(&greedy(adapter("strong", &strong_dir))).done;
    assert_eq!(
        strong_again.text, strong.text,
        "the kept adapter gives the same text"
    );
    eprintln!(
        "first token with the strong adapter: {:.1} ms loading, {:.1} ms kept; base {:.1} ms",
        strong.first_token_ms, strong_again.first_token_ms, base.first_token_ms
    );

    // An adapter for another model fails, naming the tensor; the worker goes on.
    let other_dir = tmp.path().join("other");
    let other = LlamaShape {
        layers: 2,
        hidden: 64,
        heads: 4,
        kv_heads: 2,
        ffn: 128,
    };
    write_llama_adapter(
        &other_dir,
        &LlamaAdapterSpec {
            shape: other,
            ..spec
        },
    )
    .unwrap();
    let e = w
        .send(&greedy(adapter("other", &other_dir)))
        .err()
        .expect("a misfit adapter fails");
    eprintln!("misfit adapter: {e}");
    assert!(
        e.contains("base_model.model.model.layers.0.self_attn.q_proj.lora_A.weight")
            && e.contains("[8, 64]"),
        "{e}"
    );
    let e = w
        .send(&greedy(adapter("missing", &tmp.path().join("missing"))))
        .err()
        .expect("a missing adapter fails");
    assert!(e.contains("adapter_config.json"), "{e}");
    let after = w.generate(&greedy(None)).done;
    assert_eq!(after.text, base.text);
}

#[test]
fn every_weight_format_gives_the_same_greedy_start() {
    let req = request(PROMPT, 8, 0.0, 1);
    let f16 = Worker::start_with(&["--weights", "f16"])
        .generate(&req)
        .done
        .text;
    for format in ["f32", "quantized"] {
        let text = Worker::start_with(&["--weights", format])
            .generate(&req)
            .done
            .text;
        assert_eq!(text, f16, "--weights {format}");
    }
    let mut bad = Command::new(env!("CARGO_BIN_EXE_grid"))
        .args(["worker", "generate", "--weights", "f8", "--model"])
        .arg(model_path())
        .stdin(Stdio::null())
        .stdout(Stdio::null())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap();
    assert!(!bad.wait().unwrap().success(), "--weights f8 is refused");
}

/// The native pass (the default for this file: its own Q4_1/Q8_0 blocks times 8-bit
/// activations, as llama.cpp computes) gives the logits of the f32 pass up to the
/// quantization of the activations: the same next token, nearly the same distribution.
/// And it runs a prompt in pieces exactly as at once.
#[test]
fn native_weights_give_the_logits_of_f32_weights() {
    use grid_tools::llm::forward::Cache;
    use grid_tools::llm::model::WeightFormat;
    use grid_tools::llm::serve::Worker as InProcess;

    assert_eq!(
        WeightFormat::auto(&model_path()).unwrap(),
        WeightFormat::Native,
        "a Q4_1 file with Q8_0 embeddings runs native by default"
    );
    let logits = |format: WeightFormat, pieces: &[usize]| -> Vec<f32> {
        let w = InProcess::load(&model_path(), format).expect("load");
        let ids = w.tokenizer.encode_chat(PROMPT).unwrap();
        let mut cache = Cache::new(&w.model, ids.len());
        let (mut at, mut last) = (0, None);
        for end in pieces.iter().copied().chain([ids.len()]) {
            last = Some(w.model.forward(&ids[at..end], &mut cache, None).unwrap());
            at = end;
        }
        last.unwrap().to_vec1().unwrap()
    };
    let exact = logits(WeightFormat::F32, &[]);
    let native = logits(WeightFormat::Native, &[]);
    assert_eq!(native.len(), exact.len());
    let argmax = |v: &[f32]| grid_tools::llm::sample::argmax(v);
    assert_eq!(argmax(&native), argmax(&exact), "the same next token");
    let dot = |a: &[f32], b: &[f32]| a.iter().zip(b).map(|(x, y)| x * y).sum::<f32>();
    let cosine = dot(&native, &exact) / (dot(&native, &native) * dot(&exact, &exact)).sqrt();
    eprintln!("native vs f32 logits: cosine {cosine}");
    assert!(cosine > 0.99, "cosine {cosine}");
    // Token by token either way: pieces change nothing.
    assert_eq!(logits(WeightFormat::Native, &[20]), native);
}

/// The forward pass in this process: a prompt run in pieces (as long prompts are, and
/// as every generated token is) gives the logits of the prompt run at once.
#[test]
fn a_prompt_in_pieces_gives_the_same_logits() {
    use grid_tools::llm::forward::Cache;
    use grid_tools::llm::model::WeightFormat;
    use grid_tools::llm::serve::Worker as InProcess;

    let w = InProcess::load(&model_path(), WeightFormat::F32).expect("load");
    let ids = w.tokenizer.encode_chat(PROMPT).unwrap();
    assert_eq!(ids.len(), 39, "the chat template as llama.cpp renders it");
    let run = |pieces: &[&[u32]]| -> Vec<f32> {
        let mut cache = Cache::new(&w.model, ids.len());
        let mut last = None;
        for p in pieces {
            last = Some(w.model.forward(p, &mut cache, None).unwrap());
        }
        assert_eq!(cache.len(), ids.len());
        last.unwrap().to_vec1().unwrap()
    };
    let whole = run(&[&ids]);
    for split in [vec![&ids[..20], &ids[20..]], vec![&ids[..38], &ids[38..]]] {
        let pieces = run(&split);
        let diff = whole
            .iter()
            .zip(&pieces)
            .map(|(a, b)| (a - b).abs())
            .fold(0f32, f32::max);
        assert!(diff < 1e-3, "max logit difference {diff}");
    }
}

/// The benchmark driver (`tools/llm_bench.py`, run by `tools/bench/llm_vs_llamacpp.sh`)
/// speaks this build's worker protocol: a short run ends with its JSON summary, tokens
/// generated with the default weights. (It had drifted once: requests without
/// `context_limit`, `Ready` without `bytes_per_context_token`.)
#[test]
fn the_benchmark_driver_speaks_the_worker_protocol() {
    let script = Path::new(env!("CARGO_MANIFEST_DIR")).join("llm_bench.py");
    let out = Command::new("python3")
        .arg(&script)
        .args(["grid", env!("CARGO_BIN_EXE_grid")])
        .arg(model_path())
        .args(["--runs", "1", "--max-tokens", "4"])
        .output()
        .expect("python3 runs the benchmark driver");
    let stdout = String::from_utf8_lossy(&out.stdout);
    assert!(
        out.status.success(),
        "llm_bench.py failed: {stdout}{}",
        String::from_utf8_lossy(&out.stderr)
    );
    let summary: serde_json::Value =
        serde_json::from_str(&stdout[stdout.find('{').expect("a JSON summary")..])
            .expect("the summary is JSON");
    assert_eq!(summary["engine"], "grid worker generate (--weights auto)");
    assert_eq!(summary["pieces"][0], 4, "{summary}");
    assert!(
        summary["ttft_ms_median"].as_f64().unwrap() > 0.0,
        "{summary}"
    );
    assert_eq!(summary["ready"]["architecture"], "llama", "{summary}");
}
