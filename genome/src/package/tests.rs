//! Every refusal of `AdapterPackage::load`, by file and field.

use super::testutil::{valid_package, TempDir};
use super::*;

fn load_err(dir: &Path) -> String {
    match AdapterPackage::load(dir) {
        Ok(p) => panic!("expected an error, loaded {p:?}"),
        Err(e) => e.to_string(),
    }
}

fn assert_msg(msg: &str, parts: &[&str]) {
    for p in parts {
        assert!(msg.contains(p), "message {msg:?} lacks {p:?}");
    }
}

/// Valid package with adapter.toml replaced by `text`; returns the error message.
fn toml_err(text: &str) -> String {
    let dir = valid_package("toml");
    std::fs::write(dir.path().join(ADAPTER_TOML), text).unwrap();
    load_err(dir.path())
}

/// Valid package with adapter_config.json replaced by `text`.
fn config_err(text: &str) -> String {
    let dir = valid_package("config");
    std::fs::write(dir.path().join(ADAPTER_CONFIG), text).unwrap();
    load_err(dir.path())
}

/// Valid package with the weights replaced by raw bytes.
fn weights_err(bytes: &[u8]) -> String {
    let dir = valid_package("weights");
    std::fs::write(dir.path().join(ADAPTER_WEIGHTS), bytes).unwrap();
    load_err(dir.path())
}

/// A safetensors file from a header JSON and `data_len` zero bytes of data.
fn safetensors(header: &str, data_len: usize) -> Vec<u8> {
    let mut out = (header.len() as u64).to_le_bytes().to_vec();
    out.extend_from_slice(header.as_bytes());
    out.extend(std::iter::repeat_n(0u8, data_len));
    out
}

const VALID_TOML: &str =
    "name = \"geometry-tutor\"\nversion = \"1.0.0\"\ndescription = \"Explains things.\"\n";

#[test]
fn valid_package_loads() {
    let dir = valid_package("ok");
    let pkg = AdapterPackage::load(dir.path()).unwrap();
    assert_eq!(pkg.toml.name, "geometry-tutor");
    assert_eq!(pkg.toml.version, "1.0.0");
    assert_eq!(pkg.toml.license, "unknown");
    assert_eq!(pkg.toml.base_model, None);
    assert_eq!(pkg.toml.examples.len(), 2);
    assert!(pkg.toml.tags.is_empty());
    assert_eq!(pkg.base_model, TEST_BASE_MODEL);
    assert_eq!(pkg.rank, 4);
    assert_eq!(pkg.target_modules, vec!["q_proj", "v_proj"]);
    assert_eq!(pkg.tensors, 2 * 2 * 2);
    let len = std::fs::metadata(dir.path().join(ADAPTER_WEIGHTS))
        .unwrap()
        .len();
    assert_eq!(pkg.weights_size, len);
    assert_eq!(pkg.dir, dir.path());
}

#[test]
fn toml_fields_and_base_model_override() {
    let dir = valid_package("override");
    std::fs::write(
        dir.path().join(ADAPTER_TOML),
        "name = \"a1\"\nversion = \"2.3.4-beta.1+build\"\ndescription = \"  padded  \"\n\
         tags = [\"math\", \"education\"]\nlicense = \"apache-2.0\"\n\
         base_model = \"org/other-model\"\nexamples = [\"x\"]\n",
    )
    .unwrap();
    let pkg = AdapterPackage::load(dir.path()).unwrap();
    assert_eq!(pkg.toml.description, "padded");
    assert_eq!(pkg.toml.tags, vec!["math", "education"]);
    assert_eq!(pkg.toml.license, "apache-2.0");
    assert_eq!(pkg.base_model, "org/other-model");
    assert_eq!(pkg.toml.base_model.as_deref(), Some("org/other-model"));
}

#[test]
fn base_model_missing_everywhere() {
    let dir = valid_package("nobase");
    std::fs::write(
        dir.path().join(ADAPTER_CONFIG),
        r#"{"peft_type":"LORA","r":4,"target_modules":["q_proj","v_proj"]}"#,
    )
    .unwrap();
    assert_msg(
        &load_err(dir.path()),
        &["adapter.toml: base_model:", "missing"],
    );
}

#[test]
fn missing_files() {
    for file in [ADAPTER_TOML, ADAPTER_CONFIG, ADAPTER_WEIGHTS] {
        let dir = valid_package("missing");
        std::fs::remove_file(dir.path().join(file)).unwrap();
        let err = AdapterPackage::load(dir.path()).unwrap_err();
        assert_eq!(
            err,
            PackageError::Missing {
                file: file.to_string()
            }
        );
        assert_eq!(err.to_string(), format!("{file}: missing"));
    }
}

#[test]
fn toml_refusals() {
    let cases: &[(&str, &[&str])] = &[
        (
            "name = [",
            &["adapter.toml: syntax:", "not valid TOML", "line 1"],
        ),
        (
            "version = \"1.0.0\"\ndescription = \"d\"\n",
            &["adapter.toml: name: missing"],
        ),
        (
            "name = \"a\"\ndescription = \"d\"\n",
            &["adapter.toml: version: missing"],
        ),
        (
            "name = \"a\"\nversion = \"1.0.0\"\n",
            &["adapter.toml: description: missing"],
        ),
        (
            "name = \"Geometry_Tutor\"\nversion = \"1.0.0\"\ndescription = \"d\"\n",
            &["adapter.toml: name:", "'G'"],
        ),
        (
            "name = \"-a\"\nversion = \"1.0.0\"\ndescription = \"d\"\n",
            &["adapter.toml: name:", "hyphen"],
        ),
        (
            "name = \"a--b\"\nversion = \"1.0.0\"\ndescription = \"d\"\n",
            &["adapter.toml: name:", "double hyphen"],
        ),
        (
            "name = \"\"\nversion = \"1.0.0\"\ndescription = \"d\"\n",
            &["adapter.toml: name:", "empty"],
        ),
        (
            "name = 5\nversion = \"1.0.0\"\ndescription = \"d\"\n",
            &["adapter.toml: name:", "string"],
        ),
        (
            "name = \"a\"\nversion = \"1.0\"\ndescription = \"d\"\n",
            &["adapter.toml: version: \"1.0\" is not semver ("],
        ),
        (
            "name = \"a\"\nversion = \"1.0.0\"\ndescription = \"   \\n \"\n",
            &["adapter.toml: description:", "empty"],
        ),
        (
            "name = \"a\"\nversion = \"1.0.0\"\ndescription = \"\"\n",
            &["adapter.toml: description:", "empty"],
        ),
        (
            "name = \"a\"\nversion = \"1.0.0\"\ndescription = \"d\"\nauthor = \"x\"\n",
            &["adapter.toml: author: unknown key"],
        ),
        (
            "name = \"a\"\nversion = \"1.0.0\"\ndescription = \"d\"\n[extra]\nx = 1\n",
            &["adapter.toml: extra: unknown key"],
        ),
        (
            "name = \"a\"\nversion = \"1.0.0\"\ndescription = \"d\"\ntags = [\"Math\"]\n",
            &["adapter.toml: tags[0]:"],
        ),
        (
            "name = \"a\"\nversion = \"1.0.0\"\ndescription = \"d\"\ntags = [\"m\", \"m\"]\n",
            &["adapter.toml: tags[1]:", "repeated"],
        ),
        (
            "name = \"a\"\nversion = \"1.0.0\"\ndescription = \"d\"\nlicense = \"\"\n",
            &["adapter.toml: license:", "empty"],
        ),
        (
            "name = \"a\"\nversion = \"1.0.0\"\ndescription = \"d\"\nexamples = [\"ok\", \" \"]\n",
            &["adapter.toml: examples[1]:", "empty"],
        ),
        (
            "name = \"a\"\nversion = \"1.0.0\"\ndescription = \"d\"\nexamples = \"one\"\n",
            &["adapter.toml: examples:"],
        ),
    ];
    for (text, parts) in cases {
        assert_msg(&toml_err(text), parts);
    }
}

#[test]
fn toml_limits() {
    let tags: Vec<String> = (0..17).map(|i| format!("\"t{i}\"")).collect();
    let text = format!("{VALID_TOML}tags = [{}]\n", tags.join(", "));
    assert_msg(&toml_err(&text), &["adapter.toml: tags:", "more than 16"]);

    let long_tag = "a".repeat(33);
    let text = format!("{VALID_TOML}tags = [\"{long_tag}\"]\n");
    assert_msg(
        &toml_err(&text),
        &["adapter.toml: tags[0]:", "longer than 32"],
    );

    let long_name = "a".repeat(65);
    let text = format!("name = \"{long_name}\"\nversion = \"1.0.0\"\ndescription = \"d\"\n");
    assert_msg(&toml_err(&text), &["adapter.toml: name:", "longer than 64"]);

    let long_desc = "d".repeat(2001);
    let text = format!("name = \"a\"\nversion = \"1.0.0\"\ndescription = \"{long_desc}\"\n");
    assert_msg(
        &toml_err(&text),
        &["adapter.toml: description:", "more than 2000"],
    );

    let examples: Vec<String> = (0..33).map(|i| format!("\"e{i}\"")).collect();
    let text = format!("{VALID_TOML}examples = [{}]\n", examples.join(", "));
    assert_msg(
        &toml_err(&text),
        &["adapter.toml: examples:", "more than 32"],
    );

    let long_ex = "e".repeat(501);
    let text = format!("{VALID_TOML}examples = [\"{long_ex}\"]\n");
    assert_msg(
        &toml_err(&text),
        &["adapter.toml: examples[0]:", "more than 500"],
    );

    let long_license = "l".repeat(65);
    let text = format!("{VALID_TOML}license = \"{long_license}\"\n");
    assert_msg(
        &toml_err(&text),
        &["adapter.toml: license:", "more than 64"],
    );

    // Exactly at the limits is fine.
    let tags: Vec<String> = (0..16).map(|i| format!("\"t{i}\"")).collect();
    let text = format!(
        "name = \"{}\"\nversion = \"1.0.0\"\ndescription = \"{}\"\ntags = [{}]\n",
        "a".repeat(64),
        "d".repeat(2000),
        tags.join(", ")
    );
    let dir = valid_package("limits");
    std::fs::write(dir.path().join(ADAPTER_TOML), text).unwrap();
    AdapterPackage::load(dir.path()).unwrap();
}

#[test]
fn toml_not_utf8_and_too_large() {
    let dir = valid_package("utf8");
    std::fs::write(dir.path().join(ADAPTER_TOML), [0xff, 0xfe, b'a']).unwrap();
    assert_msg(&load_err(dir.path()), &["adapter.toml: syntax:", "UTF-8"]);
    let big = format!("{VALID_TOML}# {}\n", "x".repeat(MAX_TOML_SIZE as usize));
    std::fs::write(dir.path().join(ADAPTER_TOML), big).unwrap();
    assert_msg(&load_err(dir.path()), &["adapter.toml: size:"]);
}

#[test]
fn config_refusals() {
    let ok_tail = r#""target_modules":["q_proj"],"base_model_name_or_path":"m""#;
    let cases: Vec<(String, &[&str])> = vec![
        (
            "{not json".into(),
            &["adapter_config.json: syntax:", "not valid JSON"],
        ),
        (
            "[1, 2]".into(),
            &["adapter_config.json: root:", "not a JSON object", "array"],
        ),
        (
            format!("{{{ok_tail}}}"),
            &["adapter_config.json: r: missing"],
        ),
        (
            format!("{{\"r\":0,{ok_tail}}}"),
            &["adapter_config.json: r:", "0 is not in"],
        ),
        (
            format!("{{\"r\":4097,{ok_tail}}}"),
            &["adapter_config.json: r:", "4097"],
        ),
        (
            format!("{{\"r\":-1,{ok_tail}}}"),
            &["adapter_config.json: r:", "not a positive integer"],
        ),
        (
            format!("{{\"r\":4.5,{ok_tail}}}"),
            &["adapter_config.json: r:", "not a positive integer"],
        ),
        (
            format!("{{\"r\":\"4\",{ok_tail}}}"),
            &["adapter_config.json: r:", "not a positive integer"],
        ),
        (
            format!("{{\"peft_type\":\"IA3\",\"r\":4,{ok_tail}}}"),
            &["adapter_config.json: peft_type:", "\"IA3\" is not \"LORA\""],
        ),
        (
            format!("{{\"peft_type\":1,\"r\":4,{ok_tail}}}"),
            &["adapter_config.json: peft_type:"],
        ),
        (
            format!("{{\"lora_alpha\":\"8\",\"r\":4,{ok_tail}}}"),
            &["adapter_config.json: lora_alpha:", "not a number"],
        ),
        (
            r#"{"r":4,"base_model_name_or_path":"m"}"#.into(),
            &["adapter_config.json: target_modules: missing"],
        ),
        (
            r#"{"r":4,"target_modules":[]}"#.into(),
            &["adapter_config.json: target_modules: is empty"],
        ),
        (
            r#"{"r":4,"target_modules":["q_proj", 3]}"#.into(),
            &["adapter_config.json: target_modules[1]:", "not a string"],
        ),
        (
            r#"{"r":4,"target_modules":{"a":1}}"#.into(),
            &["adapter_config.json: target_modules:", "an object"],
        ),
        (
            r#"{"r":4,"target_modules":"q_proj","base_model_name_or_path":7}"#.into(),
            &[
                "adapter_config.json: base_model_name_or_path:",
                "not a string",
            ],
        ),
        (
            r#"{"r":4,"target_modules":"q_proj","rank_pattern":{"q_proj":8}}"#.into(),
            &["adapter_config.json: rank_pattern:", "not supported"],
        ),
    ];
    for (text, parts) in &cases {
        assert_msg(&config_err(text), parts);
    }
}

#[test]
fn config_target_modules_string_and_null_base() {
    let dir = valid_package("tmstr");
    std::fs::write(
        dir.path().join(ADAPTER_CONFIG),
        r#"{"r":4,"lora_alpha":8.5,"target_modules":"all-linear","base_model_name_or_path":null}"#,
    )
    .unwrap();
    std::fs::write(
        dir.path().join(ADAPTER_TOML),
        format!("{VALID_TOML}base_model = \"x/y\"\n"),
    )
    .unwrap();
    let pkg = AdapterPackage::load(dir.path()).unwrap();
    assert_eq!(pkg.target_modules, vec!["all-linear"]);
    assert_eq!(pkg.base_model, "x/y");
}

const T: &str = "base_model.model.model.layers.0.self_attn.q_proj";

/// A valid A/B pair header for r = 4, in 4 and out 4: 64 + 64 bytes of F32.
fn pair_header(a_shape: &str, b_shape: &str, a_off: &str, b_off: &str) -> String {
    format!(
        r#"{{"__metadata__":{{"format":"pt"}},"{T}.lora_A.weight":{{"dtype":"F32","shape":{a_shape},"data_offsets":{a_off}}},"{T}.lora_B.weight":{{"dtype":"F32","shape":{b_shape},"data_offsets":{b_off}}}}}"#
    )
}

#[test]
fn handmade_safetensors_valid() {
    let dir = valid_package("hand");
    let h = pair_header("[4,4]", "[4,4]", "[0,64]", "[64,128]");
    std::fs::write(dir.path().join(ADAPTER_WEIGHTS), safetensors(&h, 128)).unwrap();
    let pkg = AdapterPackage::load(dir.path()).unwrap();
    assert_eq!(pkg.tensors, 2);
}

#[test]
fn weights_refusals() {
    let w = "adapter_model.safetensors";
    // Too short for the length prefix.
    assert_msg(&weights_err(&[1, 2, 3]), &[w, ": header:", "too short"]);
    assert_msg(&weights_err(&[]), &[w, ": header:", "too short"]);
    // Header length beyond the file.
    let mut b = 1000u64.to_le_bytes().to_vec();
    b.extend_from_slice(b"{}");
    assert_msg(&weights_err(&b), &[w, ": header:", "beyond the end"]);
    // Header length beyond the 100 MB cap.
    let b = u64::MAX.to_le_bytes().to_vec();
    assert_msg(&weights_err(&b), &[w, ": header:", "more than"]);
    // Header not JSON / not an object / duplicate key.
    assert_msg(
        &weights_err(&safetensors("not json", 0)),
        &[w, ": header:", "not a valid JSON"],
    );
    assert_msg(
        &weights_err(&safetensors("[1]", 0)),
        &[w, ": header:", "not a valid JSON"],
    );
    let dup = format!(
        r#"{{"{T}.lora_A.weight":{{"dtype":"F32","shape":[4,4],"data_offsets":[0,64]}},"{T}.lora_A.weight":{{"dtype":"F32","shape":[4,4],"data_offsets":[0,64]}}}}"#
    );
    assert_msg(
        &weights_err(&safetensors(&dup, 64)),
        &[w, ": header:", "duplicate"],
    );
    // Bad tensor entries.
    let h = format!(r#"{{"{T}.lora_A.weight":{{"dtype":"F32","shape":[4,4]}}}}"#);
    assert_msg(&weights_err(&safetensors(&h, 64)), &[w, T, "data_offsets"]);
    let h = pair_header("[4,4]", "[4,4]", "[0,64]", "[64,128]").replacen("F32", "Q4", 1);
    assert_msg(
        &weights_err(&safetensors(&h, 128)),
        &[w, &format!("{T}.lora_A.weight:"), "unknown dtype"],
    );
    let h = r#"{"__metadata__":{"format":1}}"#;
    assert_msg(&weights_err(&safetensors(h, 0)), &[w, ": __metadata__:"]);
    // Offsets out of range.
    let h = pair_header("[4,4]", "[4,4]", "[0,64]", "[64,1000]");
    assert_msg(
        &weights_err(&safetensors(&h, 128)),
        &[w, &format!("{T}.lora_B.weight:"), "out of range"],
    );
    // End before start.
    let h = pair_header("[4,4]", "[4,4]", "[64,0]", "[64,128]");
    assert_msg(
        &weights_err(&safetensors(&h, 128)),
        &[w, "lora_A.weight:", "end before"],
    );
    // Overlapping.
    let h = pair_header("[4,4]", "[4,4]", "[0,64]", "[32,96]");
    assert_msg(
        &weights_err(&safetensors(&h, 128)),
        &[
            w,
            &format!("{T}.lora_B.weight:"),
            "overlap",
            "lora_A.weight [0, 64]",
        ],
    );
    // Gap between tensors.
    let h = pair_header("[4,4]", "[4,4]", "[0,64]", "[72,136]");
    assert_msg(
        &weights_err(&safetensors(&h, 136)),
        &[w, "lora_B.weight:", "gap"],
    );
    // File length mismatch (trailing bytes).
    let h = pair_header("[4,4]", "[4,4]", "[0,64]", "[64,128]");
    assert_msg(
        &weights_err(&safetensors(&h, 130)),
        &[w, ": size:", "file is"],
    );
    // dtype x shape not matching the byte length.
    let h = pair_header("[4,5]", "[4,4]", "[0,64]", "[64,128]");
    assert_msg(
        &weights_err(&safetensors(&h, 128)),
        &[
            w,
            &format!("{T}.lora_A.weight:"),
            "dtype F32 x shape [4, 5] is 80 bytes",
        ],
    );
    // Shape overflow.
    let h = pair_header("[4294967296,4294967296]", "[4,4]", "[0,64]", "[64,128]");
    assert_msg(
        &weights_err(&safetensors(&h, 128)),
        &[w, "lora_A.weight:", "overflows"],
    );
    // lora_A shape[0] != r (r = 4).
    let h = pair_header("[8,2]", "[4,4]", "[0,64]", "[64,128]");
    assert_msg(
        &weights_err(&safetensors(&h, 128)),
        &[
            w,
            &format!("{T}.lora_A.weight: shape [8, 2] does not match r = 4"),
        ],
    );
    // lora_B shape[1] != r.
    let h = pair_header("[4,4]", "[8,2]", "[0,64]", "[64,128]");
    assert_msg(
        &weights_err(&safetensors(&h, 128)),
        &[
            w,
            &format!("{T}.lora_B.weight: shape [8, 2] does not match r = 4"),
        ],
    );
    // lora_A not 2-D.
    let h = pair_header("[4,2,2]", "[4,4]", "[0,64]", "[64,128]");
    assert_msg(
        &weights_err(&safetensors(&h, 128)),
        &[w, "lora_A.weight: shape [4, 2, 2]"],
    );
    // lora_A without lora_B, and the reverse.
    let h =
        format!(r#"{{"{T}.lora_A.weight":{{"dtype":"F32","shape":[4,4],"data_offsets":[0,64]}}}}"#);
    assert_msg(
        &weights_err(&safetensors(&h, 64)),
        &[
            w,
            &format!("{T}.lora_A.weight: no matching {T}.lora_B.weight"),
        ],
    );
    let h =
        format!(r#"{{"{T}.lora_B.weight":{{"dtype":"F32","shape":[4,4],"data_offsets":[0,64]}}}}"#);
    assert_msg(
        &weights_err(&safetensors(&h, 64)),
        &[
            w,
            &format!("{T}.lora_B.weight: no matching {T}.lora_A.weight"),
        ],
    );
    // No LoRA tensors at all.
    let h = r#"{"model.embed.weight":{"dtype":"F16","shape":[4,4],"data_offsets":[0,32]}}"#;
    assert_msg(
        &weights_err(&safetensors(h, 32)),
        &[w, ": tensors:", "no LoRA tensors"],
    );
    assert_msg(
        &weights_err(&safetensors("{}", 0)),
        &[w, ": tensors:", "no LoRA tensors"],
    );
}

#[test]
fn weights_trailing_byte_on_real_package() {
    let dir = valid_package("trail");
    let p = dir.path().join(ADAPTER_WEIGHTS);
    let mut bytes = std::fs::read(&p).unwrap();
    bytes.push(0);
    std::fs::write(&p, &bytes).unwrap();
    assert_msg(&load_err(dir.path()), &["adapter_model.safetensors: size:"]);
}

#[test]
fn weights_rank_mismatch_with_config() {
    let dir = valid_package("rank");
    let p = dir.path().join(ADAPTER_CONFIG);
    let text = std::fs::read_to_string(&p)
        .unwrap()
        .replace("\"r\": 4", "\"r\": 8");
    std::fs::write(&p, text).unwrap();
    assert_msg(
        &load_err(dir.path()),
        &[
            "adapter_model.safetensors: base_model.model.model.layers.",
            "does not match r = 8",
        ],
    );
}

#[test]
fn test_package_is_deterministic() {
    let a = TempDir::new("det-a");
    let b = TempDir::new("det-b");
    for d in [&a, &b] {
        write_test_package(d.path(), "x", "0.1.0", "d", &[], 2, 8, 1).unwrap();
    }
    let wa = std::fs::read(a.path().join(ADAPTER_WEIGHTS)).unwrap();
    let wb = std::fs::read(b.path().join(ADAPTER_WEIGHTS)).unwrap();
    assert_eq!(wa, wb);
    // Header is 8-aligned like the reference writer's.
    let n = u64::from_le_bytes(wa[..8].try_into().unwrap());
    assert_eq!(n % 8, 0);
}

#[test]
fn directory_in_place_of_file() {
    let dir = valid_package("isdir");
    std::fs::remove_file(dir.path().join(ADAPTER_CONFIG)).unwrap();
    std::fs::create_dir(dir.path().join(ADAPTER_CONFIG)).unwrap();
    assert_msg(&load_err(dir.path()), &["adapter_config.json:"]);
}
