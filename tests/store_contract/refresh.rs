//! `Store::refresh_session`: the check and the rotation of a refresh token, in one transaction.

use super::*;
use gatehouse::store::{Refreshed, Rotation, SessionUser};

/// A refresh of `old` at `now` that would put `successor` in its place.
fn rotation(old: &str, successor: &str, now: DateTime<Utc>) -> Rotation {
    let mut next = session(successor, None, now + Duration::days(7));
    next.ip = Some("198.51.100.9".into());
    next.user_agent = Some("it's \"quoted\"".into());
    Rotation {
        old_token: old.to_string(),
        old_hash: sha(old),
        grace_expires: now + Duration::seconds(10),
        successor: next,
        successor_hash: sha(successor),
        new_family: Uuid::new_v4(),
        lineage_expires: now + Duration::days(7),
        now,
    }
}

fn active(id: Uuid) -> Option<SessionUser> {
    Some(SessionUser {
        id,
        status: "active".into(),
        role: None,
        has_tfa_secret: false,
    })
}

/// Nothing of a refresh that did not rotate is left behind.
async fn assert_wrote_nothing(s: &Arc<dyn Store>, r: &Rotation, out: &Refreshed) -> R {
    assert!(!out.won, "{out:?}");
    assert_eq!(s.session_get(&r.successor.token).await?, None);
    assert_eq!(s.lineage_get(&r.successor_hash).await?, None);
    Ok(())
}

pub async fn refresh_rotates_once_then_shares(s: Arc<dyn Store>) -> R {
    let user = add_user(&s, "rot@example.com", json!({})).await?;
    let bystander = add_user(&s, "by@example.com", json!({})).await?;
    let now = t0();
    let family = login(&s, "old", user, now + Duration::days(7)).await?;
    login(&s, "other", bystander, now + Duration::days(7)).await?;

    let r = rotation("old", "succ-1", now);
    let out = s.refresh_session(&r).await?;
    assert!(out.won, "{out:?}");
    assert!(out.successor_alive);
    assert_eq!(out.user, active(user));
    let old = out.session.expect("the presented session");
    assert_eq!(
        (old.user, old.next_token.as_deref(), old.expires),
        (Some(user), Some("succ-1"), r.grace_expires),
        "the old row points at its successor until the grace window ends"
    );
    assert_eq!(out.lineage.map(|l| l.family), Some(family));

    let mut successor = r.successor.clone();
    successor.user = Some(user);
    assert_eq!(s.session_get("succ-1").await?, Some(successor));
    let l = s.lineage_get(&sha("old")).await?.expect("old lineage");
    assert_eq!(
        (l.family, l.user, l.rotated_at, l.expires),
        (family, Some(user), Some(now), r.lineage_expires)
    );
    let l = s.lineage_get(&sha("succ-1")).await?.expect("new lineage");
    assert_eq!(
        (l.family, l.user, l.rotated_at, l.expires),
        (family, Some(user), None, r.lineage_expires)
    );
    assert_eq!(
        sorted(s.lineage_hashes(family).await?),
        sorted(vec![sha("old"), sha("succ-1")])
    );
    let u = s.item_get(&USERS, &json!(user.to_string())).await?;
    assert_same_instant(&u.expect("user")["last_access"], &format_ts(now));
    assert_eq!(
        s.session_tokens_of_user(bystander).await?,
        vec!["other".to_string()],
        "another user's sessions are untouched"
    );

    // Inside the grace window a second refresh gets the same successor and writes nothing.
    let again = rotation("old", "succ-2", now + Duration::seconds(1));
    let out = s.refresh_session(&again).await?;
    assert_wrote_nothing(&s, &again, &out).await?;
    assert!(out.successor_alive);
    assert_eq!(out.user, active(user));
    let old = out.session.expect("the presented session");
    assert_eq!(
        (old.next_token.as_deref(), old.expires),
        (Some("succ-1"), r.grace_expires),
        "the second refresh changes nothing"
    );

    // Once the successor is gone, the old row still points at it, but not alive.
    s.sessions_delete(&["succ-1".to_string()]).await?;
    let late = rotation("old", "succ-3", now + Duration::seconds(2));
    let out = s.refresh_session(&late).await?;
    assert_wrote_nothing(&s, &late, &out).await?;
    assert!(!out.successor_alive);
    Ok(())
}

pub async fn refresh_reports_what_it_refuses(s: Arc<dyn Store>) -> R {
    let now = t0();
    let user = add_user(&s, "ok@example.com", json!({})).await?;

    // A token never issued: nothing found.
    let r = rotation("never-issued", "n-1", now);
    let out = s.refresh_session(&r).await?;
    assert_wrote_nothing(&s, &r, &out).await?;
    assert_eq!((out.session, out.user, out.lineage), (None, None, None));

    // Expired: reported as found, with its expiry, and not rotated.
    login(&s, "stale", user, now - Duration::seconds(1)).await?;
    let r = rotation("stale", "n-2", now);
    let out = s.refresh_session(&r).await?;
    assert_wrote_nothing(&s, &r, &out).await?;
    let stale = out.session.expect("the expired row is reported");
    assert_eq!(
        (stale.expires, stale.next_token),
        (now - Duration::seconds(1), None)
    );

    // A user who is not active: reported with the status, not rotated.
    for status in ["suspended", "invited", "draft", "archived"] {
        let id = add_user(
            &s,
            &format!("{status}@example.com"),
            json!({ "status": status }),
        )
        .await?;
        login(&s, status, id, now + Duration::days(1)).await?;
        let r = rotation(status, &format!("n-{status}"), now);
        let out = s.refresh_session(&r).await?;
        assert_wrote_nothing(&s, &r, &out).await?;
        assert_eq!(out.user.map(|u| u.status), Some(status.to_string()));
        let row = s.session_get(status).await?.expect("row kept");
        assert_eq!(row.next_token, None, "{status}: the row is not marked");
    }

    // A share session is never rotated.
    let mut shared = session("shared", Some(user), now + Duration::days(1));
    shared.share = Some(Uuid::new_v4());
    s.session_insert(&shared, &lineage("shared", Uuid::new_v4(), Some(user), now))
        .await?;
    let r = rotation("shared", "n-3", now);
    assert_wrote_nothing(&s, &r, &s.refresh_session(&r).await?).await?;

    // A token whose row was purged: only its lineage is left, with when it was rotated.
    let family = login(&s, "purged", user, now + Duration::days(1)).await?;
    assert!(
        s.refresh_session(&rotation("purged", "n-4", now))
            .await?
            .won
    );
    s.sessions_delete(&["purged".to_string()]).await?;
    let r = rotation("purged", "n-5", now + Duration::minutes(1));
    let out = s.refresh_session(&r).await?;
    assert_wrote_nothing(&s, &r, &out).await?;
    assert_eq!(out.session, None);
    let l = out.lineage.expect("lineage outlives the row");
    assert_eq!((l.family, l.rotated_at), (family, Some(now)));
    Ok(())
}

pub async fn refresh_keeps_or_starts_the_family(s: Arc<dyn Store>) -> R {
    let now = t0();
    let role = add_role(&s, "editors").await?;
    let user = add_user(
        &s,
        "fam@example.com",
        json!({ "role": role.to_string(), "tfa_secret": "JBSWY3DPEHPK3PXP" }),
    )
    .await?;

    // A session Directus created has no lineage: the refresh starts the given family.
    let mut foreign = session("from-directus", Some(user), now + Duration::seconds(5));
    foreign.ip = None;
    s.session_insert(&foreign, &lineage("unrelated", Uuid::new_v4(), None, now))
        .await?;
    let r = rotation("from-directus", "f-1", now);
    let out = s.refresh_session(&r).await?;
    assert!(out.won, "{out:?}");
    assert_eq!(
        out.lineage.map(|l| (l.family, l.rotated_at)),
        Some((r.new_family, Some(now))),
        "the presented token had no lineage: it now starts one"
    );
    assert_eq!(
        out.user,
        Some(SessionUser {
            id: user,
            status: "active".into(),
            role: Some(role),
            has_tfa_secret: true,
        })
    );
    // The grace window never outlives the row itself (5 s left, 10 s of grace).
    let old = s.session_get("from-directus").await?.expect("old row");
    assert_eq!(old.expires, now + Duration::seconds(5));
    for token in ["from-directus", "f-1"] {
        let l = s.lineage_get(&sha(token)).await?.expect("lineage written");
        assert_eq!(l.family, r.new_family, "{token}");
    }

    // The next refresh keeps that family rather than starting another.
    let next = rotation("f-1", "f-2", now + Duration::seconds(1));
    assert!(s.refresh_session(&next).await?.won);
    let l = s.lineage_get(&sha("f-2")).await?.expect("lineage written");
    assert_eq!(l.family, r.new_family);
    Ok(())
}

pub async fn concurrent_refreshes_agree_on_one_successor(s: Arc<dyn Store>) -> R {
    let user = add_user(&s, "race@example.com", json!({})).await?;
    let family = login(&s, "contested", user, t0() + Duration::days(7)).await?;

    let tasks: Vec<_> = (0..20)
        .map(|i| {
            let s = s.clone();
            let r = rotation("contested", &format!("succ-{i:02}"), t0());
            tokio::spawn(async move { (format!("succ-{i:02}"), s.refresh_session(&r).await) })
        })
        .collect();
    let mut outcomes = Vec::new();
    for t in futures::future::join_all(tasks).await {
        let (token, outcome) = t.expect("task panicked");
        outcomes.push((token, outcome?));
    }

    let winners: Vec<&String> = outcomes
        .iter()
        .filter(|(_, o)| o.won)
        .map(|(t, _)| t)
        .collect();
    assert_eq!(
        winners.len(),
        1,
        "exactly one refresh rotates: {outcomes:?}"
    );
    let winner = winners[0].clone();
    for (token, out) in &outcomes {
        let next = out.session.as_ref().and_then(|s| s.next_token.clone());
        assert_eq!(
            next.as_ref(),
            Some(&winner),
            "{token} must see the winner's successor"
        );
        assert!(out.successor_alive, "{token}");
    }
    assert_eq!(
        sorted(s.session_tokens_of_user(user).await?),
        sorted(vec!["contested".to_string(), winner.clone()])
    );
    assert_eq!(
        sorted(s.lineage_hashes(family).await?),
        sorted(vec![sha("contested"), sha(&winner)])
    );
    Ok(())
}
