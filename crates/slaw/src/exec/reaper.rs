//! No process outlives its trial. A command trainer may start processes that leave its process
//! group (`setsid`, a double fork, a daemon), which neither the group's SIGKILL nor the death
//! signal reaches. slaw's workers and `slaw run` make themselves *child subreapers*
//! (`PR_SET_CHILD_SUBREAPER`): such orphans are re-parented to them instead of to init, so they
//! stay descendants, found through `/proc` and killed when their trial ends (or, for `slaw run`,
//! when the worker that started them is gone).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

/// Makes this process the reaper of its orphaned descendants. Returns whether the kernel
/// accepted it (Linux 3.4 and later).
#[allow(unsafe_code)]
pub fn become_subreaper() -> bool {
    // SAFETY: prctl with PR_SET_CHILD_SUBREAPER takes an integer flag and has no other effect.
    unsafe { libc::prctl(libc::PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0) == 0 }
}

/// This process's id.
fn own_pid() -> i32 {
    std::process::id() as i32
}

/// Every process's parent, from `/proc/<pid>/stat`, and whether it is a zombie.
fn process_table() -> HashMap<i32, (i32, bool)> {
    let mut table = HashMap::new();
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return table;
    };
    for entry in entries.flatten() {
        let Some(pid) = entry
            .file_name()
            .to_str()
            .and_then(|n| n.parse::<i32>().ok())
        else {
            continue;
        };
        let Ok(stat) = std::fs::read_to_string(entry.path().join("stat")) else {
            continue;
        };
        // "pid (comm) state ppid …": comm may hold spaces and parentheses.
        let Some(after) = stat.rfind(')').map(|i| &stat[i + 1..]) else {
            continue;
        };
        let mut fields = after.split_whitespace();
        let state = fields.next().unwrap_or("");
        if let Some(ppid) = fields.next().and_then(|p| p.parse::<i32>().ok()) {
            table.insert(pid, (ppid, state == "Z"));
        }
    }
    table
}

/// The descendants of `root` (not `root` itself), skipping the subtrees of `spare`.
fn descendants(table: &HashMap<i32, (i32, bool)>, root: i32, spare: &HashSet<i32>) -> Vec<i32> {
    let mut children: HashMap<i32, Vec<i32>> = HashMap::new();
    for (&pid, &(ppid, _)) in table {
        children.entry(ppid).or_default().push(pid);
    }
    let mut out = Vec::new();
    let mut stack = vec![root];
    while let Some(p) = stack.pop() {
        for &c in children.get(&p).map_or(&[][..], Vec::as_slice) {
            if spare.contains(&c) || c == root {
                continue;
            }
            out.push(c);
            stack.push(c);
        }
    }
    out
}

/// Kills every descendant of this process except the subtrees of `spare`, and reaps those
/// that were re-parented to it. Repeats until none is left (a killed parent's children are
/// re-parented to this process), for at most two seconds. Returns how many were killed.
#[allow(unsafe_code)]
pub fn kill_descendants(spare: &[i32]) -> usize {
    let me = own_pid();
    let spare: HashSet<i32> = spare.iter().copied().collect();
    let mut killed = HashSet::new();
    let deadline = Instant::now() + Duration::from_secs(2);
    loop {
        let table = process_table();
        let left = descendants(&table, me, &spare);
        if left.is_empty() || Instant::now() > deadline {
            return killed.len();
        }
        for &pid in &left {
            let (ppid, zombie) = table.get(&pid).copied().unwrap_or((0, false));
            if !zombie {
                // SAFETY: a signal to a descendant of this process (listed just now).
                unsafe {
                    libc::kill(pid, libc::SIGKILL);
                }
                killed.insert(pid);
            }
            if ppid == me {
                // SAFETY: waitpid on our own child; WNOHANG never blocks.
                unsafe {
                    libc::waitpid(pid, std::ptr::null_mut(), libc::WNOHANG);
                }
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn descendants_follow_the_tree_and_spare_subtrees() {
        let table: HashMap<i32, (i32, bool)> = [
            (10, (1, false)),
            (11, (10, false)),
            (12, (11, true)),
            (13, (10, false)),
            (14, (13, false)),
            (20, (1, false)),
        ]
        .into_iter()
        .collect();
        let mut all = descendants(&table, 10, &HashSet::new());
        all.sort();
        assert_eq!(all, vec![11, 12, 13, 14]);
        let mut some = descendants(&table, 10, &[13].into_iter().collect());
        some.sort();
        assert_eq!(some, vec![11, 12]);
    }

    #[test]
    fn the_process_table_has_this_process() {
        let table = process_table();
        assert!(table.contains_key(&own_pid()));
    }
}
