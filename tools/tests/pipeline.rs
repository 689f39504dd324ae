//! `grid pipeline` between real `grid node` processes: a pipeline on A runs its steps on
//! B and C (one of them in parallel branches) and passes outputs on; `--on B` runs one
//! on B (whose owner allows it) and is denied on C; a malformed file is
//! refused naming the field; a runner killed with SIGKILL resumes from its journal
//! without running a completed step again.

mod common;

use std::time::Duration;

use common::*;
use serde_json::Value;

const T: Duration = Duration::from_secs(40);

fn node(iface: &str) -> Grid {
    Grid::start(&format!(
        "[node]\nannounce_interval = \"1h\"\nshare_instance = false\n[[interface]]\n{iface}\n"
    ))
}

fn identity(g: &Grid) -> String {
    g.id()["identity"].as_str().unwrap().to_string()
}

fn write(dir: &TempDir, name: &str, text: &str) -> String {
    let p = dir.0.join(name);
    std::fs::write(&p, text).unwrap();
    p.display().to_string()
}

#[test]
fn a_pipeline_runs_its_steps_on_two_peers_and_passes_outputs_on() {
    let _slot = slot();
    let port = free_port();
    let a = node(&format!(
        "type = \"tcp_server\"\nlisten = \"127.0.0.1:{port}\""
    ));
    let client = format!("type = \"tcp_client\"\ntarget = \"127.0.0.1:{port}\"");
    // B's owner lets trusted peers run pipelines there (`--on`); C's does not.
    let b = node(&format!("{client}\n[acl]\n\"sentinel/*\" = \"trusted\""));
    let c = node(&client);
    for peer in [&b, &c] {
        a.json(&["trust", &identity(peer), "trusted"]);
        peer.json(&["trust", &identity(&a), "trusted"]);
    }
    let files = TempDir::new("pipelines");
    let file = write(
        &files,
        "two-peers.json",
        r#"{"name": "two-peers", "inputs": {"b": {}, "c": {}},
        "steps": [
          {"id": "ping-b", "type": "command", "target": "{{input.b}}", "command": "grid/ping"},
          {"id": "fan", "type": "parallel", "branches": [
             [{"id": "caps-b", "type": "command", "target": "{{input.b}}", "command": "grid/status"}],
             [{"id": "ping-c", "type": "command", "target": "{{input.c}}", "command": "grid/ping", "retries": 2}]]},
          {"id": "done", "type": "emit", "event": "demo:done",
           "payload": {"b": "{{steps.ping-b.node}}", "c": "{{steps.ping-c.node}}", "b-says": "{{steps.caps-b.output.node}}"}}
        ]}"#,
    );
    let b_in = format!("b=\"{}\"", b.destination());
    let c_in = format!("c=\"{}\"", c.destination());
    let last = std::cell::RefCell::new(String::new());
    let v = wait_for(T, "the pipeline to run on B and C", || {
        let (ok, out, err) = a.cli(&[
            "pipeline", "run", &file, "--input", &b_in, "--input", &c_in, "--json",
        ]);
        *last.borrow_mut() = format!("{out}\n{err}");
        let v: Value = serde_json::from_str(out.lines().last()?).ok()?;
        (ok && v["status"] == "completed").then_some(v)
    });
    drop(last);
    assert_eq!(v["steps"]["ping-b"]["node"], b.destination(), "{v}");
    assert_eq!(v["steps"]["caps-b"]["node"], b.destination());
    assert_eq!(v["steps"]["ping-c"]["node"], c.destination());
    assert_eq!(v["progress"], 100);
    let handle = v["handle"].as_str().unwrap().to_string();
    let (_, out, _) = a.cli(&["listen", "demo:*", "--recent", "--timeout", "1", "--json"]);
    let done: Value = serde_json::from_str(out.lines().next().unwrap()).unwrap();
    assert_eq!(done["payload"]["b"], b.destination(), "{done}");
    assert_eq!(done["payload"]["c"], c.destination());
    assert_eq!(
        done["payload"]["b-says"],
        b.destination(),
        "B's own answer passed on"
    );
    let status = a.json(&["pipeline", "status", &handle]);
    assert_eq!(status["status"], "completed");
    let list = a.json(&["pipeline", "list"]);
    assert!(
        list.as_array()
            .unwrap()
            .iter()
            .any(|r| r["handle"] == handle.as_str()),
        "{list}"
    );

    // `--on B`: A submits a pipeline that B runs (its step pings A from B); its status
    // is asked of B too, and A keeps no run of it. C's owner did not allow it: denied.
    let remote = write(
        &files,
        "remote.json",
        r#"{"name": "remote", "inputs": {"a": {}},
        "steps": [{"id": "ping-a", "type": "command", "target": "{{input.a}}", "command": "grid/ping"}]}"#,
    );
    let a_in = format!("a=\"{}\"", a.destination());
    let (bd, cd) = (b.destination(), c.destination());
    let ran = a.json(&["pipeline", "run", &remote, "--on", &bd, "--input", &a_in]);
    assert_eq!(ran["status"], "completed", "{ran}");
    assert_eq!(
        ran["steps"]["ping-a"]["output"]["node"],
        a.destination(),
        "{ran}"
    );
    let h = ran["handle"].as_str().unwrap();
    let there = a.json(&["pipeline", "status", h, "--on", &bd]);
    assert_eq!(there["status"], "completed", "{there}");
    let here = a.json(&["pipeline", "list"]);
    assert!(!here.to_string().contains(h), "{here}");
    let (ok, _, err) = a.cli(&["pipeline", "run", &remote, "--on", &cd, "--input", &a_in]);
    assert!(!ok && err.contains("denied"), "{err}");

    // A malformed pipeline is refused before anything runs, naming the field.
    let bad = write(
        &files,
        "bad.json",
        r#"{"name": "bad", "steps": [{"id": "x", "type": "command", "command": "grid/ping", "placement": {"ram_mb": "lots"}}]}"#,
    );
    let (ok, _, err) = a.cli(&["pipeline", "run", &bad]);
    assert!(!ok);
    assert!(err.contains("steps[0].placement.ram_mb"), "{err}");
    // An impossible placement fails the run at once, saying which need nobody meets.
    let huge = write(
        &files,
        "huge.json",
        r#"{"name": "huge", "steps": [{"id": "x", "type": "command", "command": "grid/ping", "placement": {"ram_mb": 50000000}}]}"#,
    );
    let (ok, _, err) = a.cli(&["pipeline", "run", &huge]);
    assert!(
        !ok && err.contains(
            "step \"x\": placement.ram_mb: neither this node nor any compute offer heard can \
             grant 50000000 MB"
        ),
        "{err}"
    );
    let bad = write(
        &files,
        "bad2.json",
        r#"{"name": "bad", "steps": [{"id": "x", "type": "emit", "event": "{{steps.nobody.output}}"}]}"#,
    );
    let (ok, _, err) = a.cli(&["pipeline", "run", &bad]);
    assert!(
        !ok && err.contains("steps[0].event: no step has the id \"nobody\""),
        "{err}"
    );
}

#[test]
fn a_killed_runner_resumes_without_running_completed_steps_again() {
    let _slot = slot();
    let mut a = node(&format!(
        "type = \"tcp_server\"\nlisten = \"127.0.0.1:{}\"",
        free_port()
    ));
    let files = TempDir::new("pipelines");
    let file = write(
        &files,
        "resume.json",
        r#"{"name": "resume", "steps": [
          {"id": "one", "type": "emit", "event": "count:one"},
          {"id": "wait", "type": "watch", "event": "go:*", "timeout": "60s"},
          {"id": "three", "type": "emit", "event": "count:three", "payload": "{{steps.wait.output.event}}"}
        ]}"#,
    );
    let started = a.json(&["pipeline", "run", &file, "--detach"]);
    let handle = started["handle"].as_str().unwrap().to_string();
    let journal = a.dir.0.join("sentinel").join(&handle).join("journal.jsonl");
    wait_for(T, "step one in the journal", || {
        std::fs::read_to_string(&journal)
            .ok()
            .filter(|j| j.contains("\"one\""))
            .map(|_| ())
    });
    a.restart();
    wait_for(T, "the node back", || {
        a.cli(&["status", "--json"]).0.then_some(())
    });
    let list = a.json(&["pipeline", "list"]);
    assert_eq!(list[0]["status"], "interrupted", "{list}");
    a.json(&["pipeline", "resume", &handle, "--detach"]);
    wait_for(T, "the resumed run to watch", || {
        let s = a.json(&["pipeline", "status", &handle]);
        (s["status"] == "running").then_some(())
    });
    // Events emitted now reach the watch (give it a moment to subscribe).
    let end = wait_for(T, "the resumed run to complete", || {
        a.json(&["emit", "go:now"]);
        std::thread::sleep(Duration::from_millis(200));
        let s = a.json(&["pipeline", "status", &handle]);
        (s["status"] == "completed").then_some(s)
    });
    assert_eq!(end["steps"]["three"]["status"], "completed", "{end}");
    let (_, out, _) = a.cli(&["listen", "count:*", "--recent", "--timeout", "1", "--json"]);
    let counted: Vec<String> = out
        .lines()
        .filter_map(|l| serde_json::from_str::<Value>(l).ok())
        .map(|e| e["event"].as_str().unwrap_or("").to_string())
        .collect();
    assert_eq!(
        counted,
        ["count:three"],
        "step one ran only before the kill"
    );
    // The run's log says so, for whoever follows it.
    let pattern = format!("sentinel:{handle}:log");
    let (_, out, _) = a.cli(&["listen", &pattern, "--recent", "--timeout", "1", "--json"]);
    assert!(
        out.contains("\"step\":\"one\"") && out.contains("taken from the journal"),
        "{out}"
    );
}

/// At most 4 pipelines run at once on a node; a fifth queues, then runs when one ends.
#[test]
fn a_fifth_pipeline_queues_until_one_of_four_ends() {
    let _slot = slot();
    let a = node(&format!(
        "type = \"tcp_server\"\nlisten = \"127.0.0.1:{}\"",
        free_port()
    ));
    let files = TempDir::new("queue");
    let wait = |n: usize| {
        write(
            &files,
            &format!("wait{n}.json"),
            &format!(
                r#"{{"name": "wait{n}", "steps": [{{"id": "w", "type": "watch", "event": "go:{n}", "timeout": "60s"}}]}}"#
            ),
        )
    };
    let handles: Vec<String> = (0..5)
        .map(|n| {
            let v = a.json(&["pipeline", "run", &wait(n), "--detach"]);
            v["handle"].as_str().unwrap().to_string()
        })
        .collect();
    let status = |h: &str| a.json(&["pipeline", "status", h])["status"].clone();
    wait_for(T, "four running and one queued", || {
        let s: Vec<Value> = handles.iter().map(|h| status(h)).collect();
        let running = s.iter().filter(|v| *v == "running").count();
        let queued = s.iter().filter(|v| *v == "queued").count();
        (running == 4 && queued == 1 && s[4] == "queued").then_some(())
    });
    // Ending one of the four lets the fifth start. (Emitted until seen: a run counts as
    // running a moment before its watch listens.)
    let finish = |n: usize| {
        wait_for(T, "the run to see its event", || {
            a.json(&["emit", &format!("go:{n}"), "null"]);
            std::thread::sleep(Duration::from_millis(100));
            (status(&handles[n]) == "completed").then_some(())
        })
    };
    finish(0);
    wait_for(T, "the fifth running", || {
        (status(&handles[4]) == "running").then_some(())
    });
    for n in 1..5 {
        finish(n);
    }
}

/// `shell` steps run where the owner turned them on, for the owner only: A (shell on)
/// runs one for its own user; the same pipeline submitted by B (`--on A`, which A's ACL
/// allows) is refused at that step.
#[test]
fn shell_steps_run_for_the_owner_where_turned_on() {
    let _slot = slot();
    let port = free_port();
    let a = node(&format!(
        "type = \"tcp_server\"\nlisten = \"127.0.0.1:{port}\"\n[sentinel]\nshell = true\n[acl]\n\"sentinel/*\" = \"trusted\""
    ));
    let b = node(&format!(
        "type = \"tcp_client\"\ntarget = \"127.0.0.1:{port}\""
    ));
    a.json(&["trust", &identity(&b), "trusted"]);
    b.json(&["trust", &identity(&a), "trusted"]);
    let files = TempDir::new("shell");
    let file = write(
        &files,
        "sh.json",
        r#"{"name": "sh", "steps": [{"id": "sum", "type": "shell", "cmd": "sh", "args": ["-c", "echo $((6 * 7))"]}]}"#,
    );
    let v = a.json(&["pipeline", "run", &file]);
    assert_eq!(v["status"], "completed", "{v}");
    assert_eq!(v["steps"]["sum"]["output"]["stdout"], "42\n", "{v}");
    let ad = a.destination();
    let (ok, out, err) = wait_for(T, "B's submission to reach A", || {
        let r = b.cli(&["pipeline", "run", &file, "--on", &ad, "--json"]);
        (!r.2.contains("no path")).then_some(r)
    });
    assert!(!ok, "{out}");
    assert!(err.contains("shell steps are off here"), "{err}\n{out}");
}
