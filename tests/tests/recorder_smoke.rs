use verifier::{config::RecorderConfig, ebpf::Recorder};

#[tokio::test(flavor = "multi_thread", worker_threads = 1)]
async fn smoke() {
    let _ = tracing_subscriber::fmt().with_test_writer().try_init();
    let t = std::time::Instant::now();
    let mut rec = match Recorder::load(&RecorderConfig::default()) {
        Ok(r) => r,
        Err(e) => panic!("{e}\n{:?}", e),
    };
    eprintln!("loaded in {:?}", t.elapsed());
    let mut events = rec.take_events().unwrap();
    std::process::Command::new("sh").args(["-c", "echo hi > /tmp/smoke-rec.txt; mv /tmp/smoke-rec.txt /tmp/smoke-rec2.txt; chmod 600 /tmp/smoke-rec2.txt; rm /tmp/smoke-rec2.txt"]).status().unwrap();
    let deadline = tokio::time::Instant::now() + std::time::Duration::from_secs(2);
    while let Ok(Some(e)) = tokio::time::timeout_at(deadline, events.next()).await {
        match &e {
            verifier::events::Event::File(f) => {
                let p = String::from_utf8_lossy(&f.path.bytes);
                if p.contains("smoke") {
                    eprintln!(
                        "{} {:?} {:?} {:?} {:?} {:?} {:?}",
                        f.actor.pid,
                        String::from_utf8_lossy(&f.actor.comm),
                        f.op,
                        p,
                        f.path.origin,
                        f.target
                            .as_ref()
                            .map(|t| String::from_utf8_lossy(&t.bytes).into_owned()),
                        f.file
                    );
                }
            }
            verifier::events::Event::Exec(x) => eprintln!(
                "EXEC {} {:?} {:?} {:?}",
                x.actor.pid,
                String::from_utf8_lossy(&x.exe.bytes),
                String::from_utf8_lossy(&x.cmdline),
                x.exe_file
            ),
            other => eprintln!("{other:?}"),
        }
    }
    eprintln!("{:#?}", rec.counters().unwrap());
}
