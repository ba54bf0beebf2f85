# Sourced by call scripts on the GPU machine: wrappers /tmp/slaw-TAG around one CUDA build
# ($SLAW) that switch this session's two changes on and off through their variables, so that
# bench/ab_step.sh and bench/ab_sweep.sh compare them in one call (BUILDS="ops adamw ring both").
#   ops:   SLAW_ADAMW_KERNEL=0 SLAW_METADATA_RING=0 (the code before both changes)
#   adamw: the AdamW kernel only;  ring: the metadata ring only;  both: the default build.
variant() { # TAG ADAMW RING
    printf '#!/bin/sh\nSLAW_ADAMW_KERNEL=%s SLAW_METADATA_RING=%s exec %s "$@"\n' "$2" "$3" "$SLAW" > "/tmp/slaw-$1"
    chmod +x "/tmp/slaw-$1"
}
variant ops 0 0
variant adamw 1 0
variant ring 0 1
variant both 1 1
variant both2 1 1
