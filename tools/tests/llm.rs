//! `grid worker generate` for real: SmolLM2-135M-Instruct (Q4_1 GGUF) through mistralrs on
//! the CPU (cargo feature `llm`).
//!
//! Needs the model file: `python3 tools/models_fetch.py --llm .cache/models` and
//! `GRID_MODELS=.cache/models`. Without it the test fails loudly; it never skips.
#![cfg(feature = "llm")]

use std::io::{BufReader, BufWriter};
use std::path::PathBuf;
use std::process::{Child, ChildStdin, ChildStdout, Command, Stdio};
use std::time::{Duration, Instant};

use grid_tools::llm_worker::{
    read_frame, write_frame, Finished, GenerateFrame, GenerateRequest, MAX_RESPONSE,
};

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

impl Worker {
    fn start() -> Worker {
        let mut child = Command::new(env!("CARGO_BIN_EXE_grid"))
            .args(["worker", "generate", "--model"])
            .arg(model_path())
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
        let stdout = BufReader::new(child.stdout.take().unwrap());
        Worker {
            child,
            stdin,
            stdout,
        }
    }

    fn generate(&mut self, prompt: &str, max_tokens: u32, temperature: f32, seed: u64) -> Run {
        let req = GenerateRequest {
            prompt: prompt.into(),
            max_tokens,
            temperature,
            seed,
        };
        write_frame(&mut self.stdin, &req).expect("send request");
        let mut tokens = Vec::new();
        loop {
            let frame: GenerateFrame = read_frame(&mut self.stdout, MAX_RESPONSE)
                .expect("read frame")
                .expect("worker ended before the final frame");
            match frame {
                GenerateFrame::Token(t) => tokens.push((t, Instant::now())),
                GenerateFrame::Done(done) => {
                    return Run {
                        tokens,
                        done,
                        done_at: Instant::now(),
                    }
                }
                GenerateFrame::Failed(e) => panic!("generation failed: {e}"),
            }
        }
    }
}

const PROMPT: &str = "Write a short story about a lighthouse keeper.";

#[test]
fn generate_streams_is_seeded_and_respects_max_tokens() {
    let mut w = Worker::start();

    // Tokens stream: several token frames, the first well before the final frame, and
    // together they are the final text.
    let a = w.generate(PROMPT, 32, 0.8, 7);
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

    // The same seed gives the same text, also after other requests ran in between.
    let other = w.generate(PROMPT, 32, 0.8, 8);
    eprintln!("seed 8: {:?}", other.done.text);
    let again = w.generate(PROMPT, 32, 0.8, 7);
    assert_eq!(again.done.text, a.done.text);
    let greedy = w.generate(PROMPT, 16, 0.0, 1);
    let greedy2 = w.generate(PROMPT, 16, 0.0, 2);
    assert_eq!(
        greedy.done.text, greedy2.done.text,
        "greedy ignores the seed"
    );

    // max_tokens is respected: a story does not end in 5 tokens.
    let short = w.generate(PROMPT, 5, 0.8, 7);
    eprintln!("max 5: {:?} ({:?})", short.done.text, short.done);
    assert!(short.done.completion_tokens <= 5, "{:?}", short.done);
    assert!(
        short.tokens.len() <= 5,
        "{} token frames",
        short.tokens.len()
    );
    assert_eq!(short.done.finish_reason, "length", "{:?}", short.done);
    assert!(a.done.text.starts_with(&short.done.text));
}
