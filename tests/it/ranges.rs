//! Property: every satisfiable single range returns exactly the bytes it names (clamped to the
//! object) with a matching `Content-Range`; every unsatisfiable one is 416. Over HTTP, against
//! the real server, on both backends, with an object spanning several read chunks.

use proptest::{
    prelude::*,
    test_runner::{Config as ProptestConfig, TestRunner},
};

use image_gateway::object_name::ImageFormat;

use crate::{on_every_backend, support::*};

const LEN: u64 = 200_003;

#[derive(Debug, Clone)]
enum Spec {
    FromTo(u64, u64),
    From(u64),
    Suffix(u64),
}

impl Spec {
    fn header(&self) -> String {
        match self {
            Spec::FromTo(a, b) => format!("bytes={a}-{b}"),
            Spec::From(a) => format!("bytes={a}-"),
            Spec::Suffix(n) => format!("bytes=-{n}"),
        }
    }

    /// The inclusive byte span this asks of an object of `LEN` bytes, or `None` (416).
    fn expected(&self) -> Option<(u64, u64)> {
        match *self {
            Spec::FromTo(a, b) if a < LEN => Some((a, b.min(LEN - 1))),
            Spec::From(a) if a < LEN => Some((a, LEN - 1)),
            Spec::Suffix(n) if n > 0 => Some((LEN - n.min(LEN), LEN - 1)),
            _ => None,
        }
    }
}

fn spec() -> impl Strategy<Value = Spec> {
    let offset = prop_oneof![
        0..LEN,
        (LEN - 70_000)..(LEN + 10),
        Just(0),
        Just(LEN - 1),
        Just(LEN),
        65_530..65_545u64
    ];
    prop_oneof![
        (offset.clone(), 0..(LEN + 50_000))
            .prop_filter_map("first <= last", |(a, b)| (a <= b).then_some(Spec::FromTo(a, b))),
        offset.prop_map(Spec::From),
        (0..(LEN + 100)).prop_map(Spec::Suffix),
    ]
}

async fn every_range_returns_exactly_its_bytes(backend: Backend) {
    let fx = Fixture::new(backend).await;
    let data = pattern(LEN as usize);
    let name = fx.put(ImageFormat::Webp, data.clone()).await;
    let server = TestServer::start(&fx).await;
    let url = server.download_url(&name);
    let client = client();
    let runtime = tokio::runtime::Handle::current();

    let mut runner = TestRunner::new(ProptestConfig {
        cases: 48,
        failure_persistence: None,
        ..ProptestConfig::default()
    });
    let result = runner.run(&spec(), |spec| {
        let (status, content_range, body) = tokio::task::block_in_place(|| {
            runtime.block_on(async {
                let r = within("range", client.get(&url).header("range", spec.header()).send())
                    .await
                    .unwrap();
                let status = r.status().as_u16();
                let content_range = r.headers().get("content-range").map(|v| v.to_str().unwrap().to_owned());
                (status, content_range, within("body", r.bytes()).await.unwrap())
            })
        });
        match spec.expected() {
            Some((a, b)) => {
                prop_assert_eq!(status, 206, "{}", spec.header());
                prop_assert_eq!(content_range, Some(format!("bytes {a}-{b}/{LEN}")));
                prop_assert!(
                    body[..] == data[a as usize..=b as usize],
                    "{}: wrong bytes",
                    spec.header()
                );
            }
            None => {
                prop_assert_eq!(status, 416, "{}", spec.header());
                prop_assert_eq!(content_range, Some(format!("bytes */{LEN}")));
            }
        }
        Ok(())
    });
    if let Err(e) = result {
        panic!("{e}");
    }
}

on_every_backend!(every_range_returns_exactly_its_bytes);
crate::on_cached_backends!(every_range_returns_exactly_its_bytes);
