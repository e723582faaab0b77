//! A rule across aggregates, "a suspended member cannot borrow", with a `Decision`: suspending
//! a member and lending them a book, decided at once on the same state, never both commit.

use std::sync::Arc;

use eventcore::prelude::*;
use eventcore::Decision;
use tokio::sync::Barrier;

mod library_domain;
use library_domain::*;

type Outcome = Result<(), RepositoryError<LibraryError>>;

/// Lends `book` to `member` unless they are suspended; waits at `barrier` after loading.
async fn lend<S: EventStore>(store: S, book: String, member: String, barrier: Arc<Barrier>) -> Outcome {
    let mut decision = Decision::new(store);
    let borrower = decision.load::<Member, _>(&member).await?;
    let copy = decision.load::<Book, _>(&book).await?;
    barrier.wait().await;
    if borrower.state().suspended {
        return Err(RepositoryError::Rejected(LibraryError::Suspended));
    }
    let lent = copy
        .state()
        .handle(Lend {
            member: member.clone(),
        })
        .map_err(RepositoryError::Rejected)?;
    decision.append::<Book, _>(&book, &lent)?;
    decision.append::<Member, _>(&member, &[MemberBorrowed { book }.into()])?;
    decision.commit().await.map(|_| ())
}

/// Suspends `member`; waits at `barrier` after loading.
async fn suspend<S: EventStore>(store: S, member: String, barrier: Arc<Barrier>) -> Outcome {
    let mut decision = Decision::new(store);
    let loaded = decision.load::<Member, _>(&member).await?;
    barrier.wait().await;
    let events = loaded
        .state()
        .handle(Suspend)
        .map_err(RepositoryError::Rejected)?;
    decision.append::<Member, _>(&member, &events)?;
    decision.commit().await.map(|_| ())
}

async fn never_both<S: EventStore>(store: S, rounds: usize) {
    for round in 0..rounds {
        let (book, member) = (format!("b{round}"), format!("m{round}"));
        let barrier = Arc::new(Barrier::new(2));
        let lending = tokio::spawn(lend(store.clone(), book.clone(), member.clone(), barrier.clone()));
        let suspending = tokio::spawn(suspend(store.clone(), member.clone(), barrier));
        let (lent, suspended) = (lending.await.unwrap(), suspending.await.unwrap());
        assert!(
            lent.is_ok() != suspended.is_ok(),
            "round {round}: lend {lent:?}, suspend {suspended:?}"
        );
        let loser = lent.err().or(suspended.err()).unwrap();
        assert!(loser.is_conflict(), "round {round}: {loser:?}");
        // What is stored agrees: a suspended member has no loan, a member with a loan is not suspended.
        let member = Repository::<Member, _>::new(store.clone())
            .load(&member)
            .await
            .unwrap();
        let book = Repository::<Book, _>::new(store.clone())
            .load(&book)
            .await
            .unwrap();
        assert_ne!(member.state().suspended, book.state().out, "round {round}");
        assert_eq!(member.state().borrowed.len(), usize::from(book.state().out));
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspend_and_lend_never_both_commit_on_memory() {
    never_both(MemoryStore::new(), 100).await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspend_and_lend_never_both_commit_on_sqlite() {
    let dir = tempfile::tempdir().unwrap();
    let store = SqliteStore::open(dir.path().join("library.db")).await.unwrap();
    never_both(store, 50).await;
}

#[cfg(feature = "postgres")]
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn suspend_and_lend_never_both_commit_on_postgres() {
    use eventcore_testing::conformance::postgres::{drop_schema, postgres_url, unique_schema};
    let Some(url) = postgres_url() else {
        return;
    };
    let store = PostgresStore::builder()
        .schema(unique_schema("ec_decision"))
        .connect(&url)
        .await
        .unwrap();
    let outcome = tokio::spawn(never_both(store.clone(), 50)).await;
    drop_schema(&store).await;
    outcome.unwrap();
}

#[tokio::test]
async fn a_suspended_member_cannot_borrow_and_a_read_only_aggregate_holds_the_commit() {
    let store = MemoryStore::new();
    let barrier = || Arc::new(Barrier::new(1));
    suspend(store.clone(), "ada".into(), barrier()).await.unwrap();
    let refused = lend(store.clone(), "b1".into(), "ada".into(), barrier()).await;
    assert_eq!(refused.unwrap_err().rejection(), Some(&LibraryError::Suspended));
    assert_eq!(store.stream_version("book-b1").await.unwrap(), 0);

    // Appending to one aggregate while only reading another: the read one must stay unchanged.
    let mut decision = Decision::new(store.clone());
    let _member = decision.load::<Member, LibraryError>("grace").await.unwrap();
    decision
        .append::<Book, LibraryError>(
            "b2",
            &[BookLent {
                member: "grace".into(),
            }
            .into()],
        )
        .unwrap();
    Repository::<Member, _>::new(store.clone())
        .execute("grace", Suspend)
        .await
        .unwrap();
    let error = decision.commit::<LibraryError>().await.unwrap_err();
    assert!(error.is_conflict(), "{error:?}");
    assert_eq!(store.stream_version("book-b2").await.unwrap(), 0);
}
