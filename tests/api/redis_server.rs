//! Redis for the tests that need one (DEVELOPERS.md): `REDIS_URL` when set, otherwise a private
//! `redis-server` on a free port, started here and killed when the handle drops. A test that
//! stops Redis always gets a private one. Either way each test gets its own key prefix.

use std::net::TcpStream;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

pub struct TestRedis {
    pub url: String,
    /// A key prefix no other test uses.
    pub prefix: String,
    port: u16,
    child: Option<Child>,
}

impl TestRedis {
    /// `REDIS_URL`, or a private server.
    pub fn shared_or_private() -> Self {
        match std::env::var("REDIS_URL") {
            Ok(url) if !url.is_empty() => Self {
                url,
                prefix: unique_prefix(),
                port: 0,
                child: None,
            },
            _ => Self::private(),
        }
    }

    /// A `redis-server` of this test's own, which it may stop and start.
    pub fn private() -> Self {
        let port = std::net::TcpListener::bind("127.0.0.1:0")
            .unwrap()
            .local_addr()
            .unwrap()
            .port();
        let mut redis = Self {
            url: format!("redis://127.0.0.1:{port}/"),
            prefix: unique_prefix(),
            port,
            child: None,
        };
        redis.start();
        redis
    }

    /// Starts the private server (again) on its port, and waits until it accepts connections.
    pub fn start(&mut self) {
        assert!(self.port != 0, "only a private Redis can be started");
        let child = Command::new("redis-server")
            .args([
                "--port",
                &self.port.to_string(),
                "--bind",
                "127.0.0.1",
                "--save",
                "",
                "--appendonly",
                "no",
            ])
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()
            .unwrap_or_else(|e| {
                panic!(
                    "this test needs Redis: set REDIS_URL, or install redis-server (Debian: apt-get install redis-server) so a private one can start: {e}"
                )
            });
        self.child = Some(child);
        let deadline = Instant::now() + Duration::from_secs(10);
        while TcpStream::connect(("127.0.0.1", self.port)).is_err() {
            assert!(
                Instant::now() < deadline,
                "redis-server did not accept connections on port {} within 10 s",
                self.port
            );
            std::thread::sleep(Duration::from_millis(20));
        }
    }

    /// Kills the private server (as a crash or a network loss would look to the gateway).
    pub fn stop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

impl Drop for TestRedis {
    fn drop(&mut self) {
        self.stop();
    }
}

fn unique_prefix() -> String {
    format!("pgw-test-{}:", uuid::Uuid::new_v4().simple())
}
