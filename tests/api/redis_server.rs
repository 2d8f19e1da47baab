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

/// A Redis Cluster of three primaries on free ports (no replicas), made with
/// `redis-cli --cluster create`, its files in a temporary directory; killed when dropped.
pub struct TestCluster {
    /// Every node, comma-separated, as `store.redis_url` takes them.
    pub urls: String,
    pub prefix: String,
    children: Vec<Child>,
    dir: std::path::PathBuf,
}

impl TestCluster {
    pub fn start() -> Self {
        let dir =
            std::env::temp_dir().join(format!("pgw-cluster-{}", uuid::Uuid::new_v4().simple()));
        std::fs::create_dir_all(&dir).unwrap();
        let ports: Vec<u16> = (0..3)
            .map(|_| {
                std::net::TcpListener::bind("127.0.0.1:0")
                    .unwrap()
                    .local_addr()
                    .unwrap()
                    .port()
            })
            .collect();
        let mut children = Vec::new();
        for port in &ports {
            let child = Command::new("redis-server")
                .current_dir(&dir)
                .args([
                    "--port",
                    &port.to_string(),
                    "--bind",
                    "127.0.0.1",
                    "--cluster-enabled",
                    "yes",
                    "--cluster-config-file",
                    &format!("nodes-{port}.conf"),
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
                        "this test needs redis-server (Debian: apt-get install redis-server): {e}"
                    )
                });
            children.push(child);
        }
        let mut cluster = Self {
            urls: ports
                .iter()
                .map(|p| format!("redis://127.0.0.1:{p}/"))
                .collect::<Vec<_>>()
                .join(","),
            prefix: unique_prefix(),
            children,
            dir,
        };
        let deadline = Instant::now() + Duration::from_secs(10);
        for port in &ports {
            while TcpStream::connect(("127.0.0.1", *port)).is_err() {
                assert!(
                    Instant::now() < deadline,
                    "cluster node {port} did not start"
                );
                std::thread::sleep(Duration::from_millis(20));
            }
        }
        let mut create = Command::new("redis-cli");
        create.arg("--cluster").arg("create");
        for port in &ports {
            create.arg(format!("127.0.0.1:{port}"));
        }
        let out = create
            .args(["--cluster-replicas", "0", "--cluster-yes"])
            .output()
            .expect("redis-cli (Debian: redis-tools) makes the cluster");
        assert!(
            out.status.success(),
            "redis-cli --cluster create failed: {}",
            String::from_utf8_lossy(&out.stdout)
        );
        // Every node must see the whole cluster before it is used.
        for port in &ports {
            loop {
                let info = Command::new("redis-cli")
                    .args(["-p", &port.to_string(), "cluster", "info"])
                    .output()
                    .unwrap();
                if String::from_utf8_lossy(&info.stdout).contains("cluster_state:ok") {
                    break;
                }
                assert!(
                    Instant::now() < deadline + Duration::from_secs(20),
                    "cluster never became ok"
                );
                std::thread::sleep(Duration::from_millis(50));
            }
        }
        cluster.children.shrink_to_fit();
        cluster
    }
}

impl Drop for TestCluster {
    fn drop(&mut self) {
        for child in &mut self.children {
            let _ = child.kill();
            let _ = child.wait();
        }
        let _ = std::fs::remove_dir_all(&self.dir);
    }
}
