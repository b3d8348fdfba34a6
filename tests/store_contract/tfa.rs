//! `TfaStore`: the last used TOTP step only moves forward, one of many concurrent uses of a
//! step or a recovery code wins, wrong codes count atomically, and the rows go with the user.

use super::*;

pub async fn tfa_steps_only_move_forward(s: Arc<dyn Store>) -> R {
    let user = add_user(&s, "t@example.com", json!({})).await?;
    assert!(s.tfa_use_step(user, 100).await?);
    assert!(!s.tfa_use_step(user, 100).await?, "the same step twice");
    assert!(!s.tfa_use_step(user, 99).await?, "an older step");
    assert!(s.tfa_use_step(user, 101).await?);
    // Many at once with one new step: exactly one wins.
    let tries = (0..8).map(|_| s.tfa_use_step(user, 102));
    let won = futures::future::join_all(tries)
        .await
        .into_iter()
        .collect::<Result<Vec<bool>, _>>()?;
    assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");
    Ok(())
}

pub async fn tfa_failures_count_lock_and_reset(s: Arc<dyn Store>) -> R {
    let user = add_user(&s, "f@example.com", json!({})).await?;
    assert_eq!(s.tfa_locked_until(user).await?, None);
    let tries = (0..6).map(|_| s.tfa_failure(user));
    let mut counts = futures::future::join_all(tries)
        .await
        .into_iter()
        .collect::<Result<Vec<i64>, _>>()?;
    counts.sort();
    assert_eq!(counts, vec![1, 2, 3, 4, 5, 6]);
    let until = t0();
    s.tfa_lock(user, until).await?;
    // A shorter lock never replaces a longer one.
    s.tfa_lock(user, until - Duration::seconds(10)).await?;
    let got = s.tfa_locked_until(user).await?.expect("a lock");
    assert_eq!(got.timestamp_millis(), until.timestamp_millis());
    s.tfa_failures_reset(user).await?;
    assert_eq!(s.tfa_locked_until(user).await?, None);
    assert_eq!(s.tfa_failure(user).await?, 1);
    // The step survives a reset; forgetting drops everything.
    assert!(s.tfa_use_step(user, 5).await?);
    s.tfa_failures_reset(user).await?;
    assert!(!s.tfa_use_step(user, 5).await?);
    s.tfa_forget(user).await?;
    assert!(s.tfa_use_step(user, 5).await?);
    Ok(())
}

pub async fn recovery_codes_are_used_once(s: Arc<dyn Store>) -> R {
    let user = add_user(&s, "r@example.com", json!({})).await?;
    let other = add_user(&s, "o@example.com", json!({})).await?;
    let hashes: Vec<String> = (0..3).map(|i| sha(&format!("code-{i}"))).collect();
    s.recovery_codes_replace(user, &hashes, t0()).await?;
    s.recovery_codes_replace(other, &hashes[..1], t0()).await?;
    assert_eq!(s.recovery_code_hashes(user).await?, sorted(hashes.clone()));
    let tries = (0..8).map(|_| s.recovery_code_use(user, &hashes[0]));
    let won = futures::future::join_all(tries)
        .await
        .into_iter()
        .collect::<Result<Vec<bool>, _>>()?;
    assert_eq!(won.iter().filter(|w| **w).count(), 1, "{won:?}");
    // Another user's copy is untouched.
    assert_eq!(
        s.recovery_code_hashes(other).await?,
        vec![hashes[0].clone()]
    );
    // Replacing drops the rest.
    let fresh = vec![sha("fresh")];
    s.recovery_codes_replace(user, &fresh, t0()).await?;
    assert!(!s.recovery_code_use(user, &hashes[1]).await?);
    assert_eq!(s.recovery_code_hashes(user).await?, fresh);
    // Deleting the user deletes its rows.
    s.tfa_failure(user).await?;
    s.tfa_lock(user, t0()).await?;
    assert!(s.tfa_locked_until(user).await?.is_some());
    s.item_delete(&USERS, &json!(user.to_string())).await?;
    assert!(s.recovery_code_hashes(user).await?.is_empty());
    assert_eq!(s.tfa_locked_until(user).await?, None);
    Ok(())
}
