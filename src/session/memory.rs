//! The query memory pool: `[execution] memory_limit_mb` as DataFusion's fair spill pool, except
//! that repartitioning never spills.
//!
//! DataFusion 55's `RepartitionExec` writes batches it cannot reserve memory for to a spill pool
//! shared by its input tasks. When two of them spill at once, the reader waits on the older
//! file while the batch it needs is in the newer one, and the query stops for good with every
//! worker idle (apache/datafusion#24883, fixed after 55.2, the latest release). A GROUP BY of
//! a million groups under a 64 MiB limit hit it about one run in four on this project's test
//! machine. So repartition buffers are always granted, as in DataFusion before repartitioning
//! could spill: they are still counted, so the sorts and aggregations around them spill sooner,
//! and they stay small because a repartition stops reading its input while every output
//! already has a batch waiting. Remove this once lakegate is on a release with the fix.

use std::fmt;

use datafusion::error::Result as DFResult;
use datafusion::execution::memory_pool::{FairSpillPool, MemoryConsumer, MemoryLimit, MemoryPool, MemoryReservation};

/// [`FairSpillPool`] whose repartition reservations always succeed (see the module comment).
#[derive(Debug)]
pub(super) struct QueryPool(FairSpillPool);

impl QueryPool {
    pub(super) fn new(bytes: usize) -> Self {
        Self(FairSpillPool::new(bytes))
    }
}

fn is_repartition(reservation: &MemoryReservation) -> bool {
    reservation.consumer().name().starts_with("RepartitionExec")
}

impl fmt::Display for QueryPool {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        self.0.fmt(f)
    }
}

impl MemoryPool for QueryPool {
    fn name(&self) -> &str {
        self.0.name()
    }

    fn register(&self, consumer: &MemoryConsumer) {
        self.0.register(consumer);
    }

    fn unregister(&self, consumer: &MemoryConsumer) {
        self.0.unregister(consumer);
    }

    fn grow(&self, reservation: &MemoryReservation, additional: usize) {
        self.0.grow(reservation, additional);
    }

    fn shrink(&self, reservation: &MemoryReservation, shrink: usize) {
        self.0.shrink(reservation, shrink);
    }

    fn try_grow(&self, reservation: &MemoryReservation, additional: usize) -> DFResult<()> {
        if is_repartition(reservation) {
            self.0.grow(reservation, additional);
            return Ok(());
        }
        self.0.try_grow(reservation, additional)
    }

    fn reserved(&self) -> usize {
        self.0.reserved()
    }

    fn memory_limit(&self) -> MemoryLimit {
        self.0.memory_limit()
    }
}

#[cfg(test)]
mod tests {
    use std::sync::Arc;

    use super::*;

    #[test]
    fn repartitions_are_granted_and_counted_and_others_are_limited() {
        let pool: Arc<dyn MemoryPool> = Arc::new(QueryPool::new(1000));
        let repartition = MemoryConsumer::new("RepartitionExec[0]").with_can_spill(true).register(&pool);
        repartition.try_grow(5000).expect("a repartition is never refused");
        assert_eq!(pool.reserved(), 5000);
        let sort = MemoryConsumer::new("ExternalSorter[0]").with_can_spill(true).register(&pool);
        assert!(sort.try_grow(600).is_err(), "a sort still gets only its fair share");
        let hash = MemoryConsumer::new("HashJoinInput").register(&pool);
        assert!(hash.try_grow(10).is_err(), "the repartition's memory is counted against the limit");
        drop(repartition);
        hash.try_grow(10).expect("the repartition's memory came back");
        assert!(matches!(pool.memory_limit(), MemoryLimit::Finite(1000)));
    }
}
