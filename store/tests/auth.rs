//! Auth state through the apply path: written with its entry, kept across a restart,
//! carried by snapshots, and entries checked before an auth change refused.

mod common;

use ballast_proto::ballast::internal::raft_request::Request;
use ballast_proto::etcdserverpb::*;
use ballast_store::auth::{Access, ROOT};
use ballast_store::Error;
use common::TestStore;

fn user_add(name: &str) -> Request {
    Request::AuthUserAdd(AuthUserAddRequest {
        name: name.into(),
        hashed_password: "$2b$04$not-a-real-hash".into(),
        ..Default::default()
    })
}

fn grant(user: &str, role: &str) -> Request {
    Request::AuthUserGrantRole(AuthUserGrantRoleRequest {
        user: user.into(),
        role: role.into(),
    })
}

/// Root and a reader of prefix "r/", auth on.
fn secured(store: &mut TestStore) {
    store.apply(user_add(ROOT)).unwrap();
    store.apply(grant(ROOT, ROOT)).unwrap();
    store.apply(user_add("reader")).unwrap();
    store
        .apply(Request::AuthRoleAdd(AuthRoleAddRequest {
            name: "r".into(),
        }))
        .unwrap();
    store
        .apply(Request::AuthRoleGrantPermission(
            AuthRoleGrantPermissionRequest {
                name: "r".into(),
                perm: Some(ballast_proto::authpb::Permission {
                    perm_type: 0,
                    key: b"r/".to_vec().into(),
                    range_end: b"r0".to_vec().into(),
                }),
            },
        ))
        .unwrap();
    store.apply(grant("reader", "r")).unwrap();
    store
        .apply(Request::AuthEnable(AuthEnableRequest {}))
        .unwrap();
}

fn assert_secured(store: &TestStore) {
    let auth = store.store().auth();
    assert!(auth.enabled());
    auth.check("reader", Access::Read, b"r/x", b"").unwrap();
    assert!(auth.check("reader", Access::Write, b"r/x", b"").is_err());
    assert!(auth.is_root(ROOT));
}

#[test]
fn auth_state_survives_a_restart() {
    let mut store = TestStore::new();
    secured(&mut store);
    let revision = store.store().auth().revision();
    store.reopen();
    assert_secured(&store);
    assert_eq!(store.store().auth().revision(), revision);
}

#[test]
fn a_snapshot_carries_the_auth_state() {
    let mut source = TestStore::new();
    secured(&mut source);
    let (_, path) = source.store().write_snapshot().unwrap();
    let target = TestStore::new();
    assert!(!target.store().auth().enabled());
    target.store().install_snapshot(&path).unwrap();
    assert_secured(&target);
}

#[test]
fn an_entry_checked_before_an_auth_change_is_refused_and_changes_nothing() {
    let mut store = TestStore::new();
    secured(&mut store);
    let checked_at = store.store().auth().revision();
    store
        .apply(Request::AuthRoleRevokePermission(
            AuthRoleRevokePermissionRequest {
                role: "r".into(),
                key: b"r/".to_vec().into(),
                range_end: b"r0".to_vec().into(),
            },
        ))
        .unwrap();
    let put = Request::Put(common::put_req("r/x", "v"));
    let refused = store.apply_checked(put.clone(), checked_at);
    assert!(
        matches!(refused, Err(Error::AuthOldRevision)),
        "{refused:?}"
    );
    assert_eq!(store.store().revisions().current, 1, "nothing written");
    // Checked at the current revision, and unchecked (a member's own), it goes through.
    let current = store.store().auth().revision();
    store.apply_checked(put.clone(), current).unwrap();
    store.apply(put).unwrap();
    assert_eq!(store.store().revisions().current, 3);
}
