#!/usr/bin/env bash
# A stand-in for Firecracker's jailer, for tests without root: same arguments, validation, error texts, jail layout,
# pid file and exec chain as src/jailer/src/{main,env}.rs and docs/jailer.md at firecracker@81b38b9d. What needs root
# is emulated instead of done: no pivot_root (FAKE_FIRECRACKER_CHROOT=<root> makes the fake firecracker resolve
# paths inside the jail), no setns/setuid/chown/cgroup writes (checked, not applied), and the device nodes mknod
# would make are empty placeholder files (so that a reused jail fails with EEXIST as it does for real).
set -u

VERSION=${FAKE_FIRECRACKER_VERSION:-1.17.0-dev}

# main.rs: the error's Display, then Rust's "Error: <Debug>" for main returning Err; exit code 1.
fail() {
  printf '%s\n' "$1" >&2
  printf 'Error: %s\n' "$2" >&2
  exit 1
}

# Rust's io::Error Display and Debug for the errno text a coreutils message ends with.
io_error() {
  local text=${1##*: } code kind
  case $text in
    'No such file or directory') code=2 kind=NotFound ;;
    'Permission denied') code=13 kind=PermissionDenied ;;
    'File exists') code=17 kind=AlreadyExists ;;
    'Not a directory') code=20 kind=NotADirectory ;;
    'Too many levels of symbolic links') code=40 kind=FilesystemLoop ;;
    *) code=5 kind=Other ;;
  esac
  IO_DISPLAY="$text (os error $code)"
  IO_DEBUG="Os { code: $code, kind: $kind, message: \"$text\" }"
}

arg_error() { fail "Failed to parse arguments: $1" "ArgumentParsing($2)"; }

# --- Arguments (utils/src/arg_parser.rs with main.rs build_arg_parser) -------------------------------------------
declare -A VALUE=() TAKES=([id]=1 [exec-file]=1 [uid]=1 [gid]=1 [chroot-base-dir]=1 [netns]=1 [cgroup]=1
  [resource-limit]=1 [cgroup-version]=1 [parent-cgroup]=1 [daemonize]=0 [new-pid-ns]=0 [version]=0)
CGROUPS=() LIMITS=() OWN=() EXTRA=()
seen_separator=0
for arg in "$@"; do
  if ((seen_separator)); then EXTRA+=("$arg"); elif [[ $arg == -- ]]; then seen_separator=1; else OWN+=("$arg"); fi
done
for arg in "${OWN[@]}"; do
  if [[ $arg == --help || $arg == -h ]]; then
    printf 'Jailer v%s\n\n' "$VERSION"
    printf 'Any arguments after the -- separator will be supplied to the jailed binary.\n\n'
    exit 0
  fi
done
for arg in "${OWN[@]}"; do
  [[ $arg == --version ]] && { printf 'Jailer v%s\n\n' "$VERSION"; exit 0; }
done
i=0
while ((i < ${#OWN[@]})); do
  arg=${OWN[i]}
  [[ $arg == --* ]] || arg_error "Found argument '$arg' which wasn't expected, or isn't valid in this context." "UnexpectedArgument(\"$arg\")"
  name=${arg#--}
  [[ -n ${TAKES[$name]+x} ]] || arg_error "Found argument '$name' which wasn't expected, or isn't valid in this context." "UnexpectedArgument(\"$name\")"
  if [[ $name != cgroup && $name != resource-limit && -n ${VALUE[$name]+x} ]]; then
    arg_error "The argument '$name' was provided more than once." "DuplicateArgument(\"$name\")"
  fi
  if ((TAKES[$name])); then
    next=${OWN[i + 1]-}
    if ((i + 1 >= ${#OWN[@]})) || [[ $next == --* ]]; then
      arg_error "The argument '$name' requires a value, but none was supplied." "MissingValue(\"$name\")"
    fi
    case $name in
      cgroup) CGROUPS+=("$next") ;;
      resource-limit) LIMITS+=("$next") ;;
    esac
    VALUE[$name]=$next
    ((i += 2))
  else
    VALUE[$name]=1
    ((i += 1))
  fi
done
for name in exec-file gid id uid; do # the parser checks required arguments in name order
  [[ -n ${VALUE[$name]+x} ]] || arg_error "Argument '$name' required, but not found." "MissingArgument(\"$name\")"
done

# --- Env::new (env.rs) -------------------------------------------------------------------------------------------
start_time_us=$(awk '{ printf "%.0f", $1 * 1000000 }' /proc/uptime)
id=${VALUE[id]}
if ((${#id} < 1 || $(printf %s "$id" | wc -c) > 64)); then
  len=$(printf %s "$id" | wc -c)
  fail "Invalid instance ID: Invalid len ($len);  the length must be between 1 and 64" "InvalidInstanceId(InvalidLen($len, 1, 64))"
fi
for ((c = 0; c < ${#id}; c++)); do
  ch=${id:c:1}
  [[ $ch == - || $ch =~ ^[[:alnum:]]$ ]] || fail "Invalid instance ID: Invalid char ($ch) at position $c" "InvalidInstanceId(InvalidChar('$ch', $c))"
done

canonicalize() { # $1: path; sets CANON or fails like Env's canonicalize
  if ! CANON=$(realpath -e -- "$1" 2>&1); then
    io_error "$CANON"
    fail "Failed to canonicalize path $1: $IO_DISPLAY" "Canonicalize(\"$1\", $IO_DEBUG)"
  fi
}
canonicalize "${VALUE[exec-file]}"
exec_file=$CANON
[[ -f $exec_file ]] || fail "$exec_file is not a file" "NotAFile(\"$exec_file\")"
exec_name=${exec_file##*/}
base=${VALUE[chroot-base-dir]:-/srv/jailer}
canonicalize "$base"
[[ -d $CANON ]] || fail "$CANON is not a directory" "NotADirectory(\"$CANON\")"
root=$CANON/$exec_name/$id/root

for name in uid gid; do
  [[ ${VALUE[$name]} =~ ^\+?[0-9]+$ ]] && ((10#${VALUE[$name]#+} <= 4294967295)) ||
    fail "Invalid $name: ${VALUE[$name]}" "${name^}(\"${VALUE[$name]}\")"
done

parent_cgroup=${VALUE[parent-cgroup]:-$exec_name}
if [[ $parent_cgroup == /* || $parent_cgroup == . || $parent_cgroup == ./* || /$parent_cgroup/ == */../* ]]; then
  fail "Parent cgroup path is invalid. Path should not be absolute or contain '..' or '.'" 'CgroupInvalidParentPath'
fi
cgroup_version=${VALUE[cgroup-version]:-1}
[[ $cgroup_version =~ ^\+?[0-9]+$ ]] && ((10#${cgroup_version#+} <= 255)) ||
  fail "$cgroup_version is an invalid cgroup version specifier" "CgroupInvalidVersion(\"$cgroup_version\")"
if ((${#CGROUPS[@]} > 0)); then
  # cgroup.rs: a v2 file's controller (the part before the dot) must be enabled in the unified hierarchy.
  ((10#$cgroup_version == 1 || 10#$cgroup_version == 2)) ||
    fail "$cgroup_version is an invalid cgroup version specifier" "CgroupInvalidVersion(\"$cgroup_version\")"
  unified=$(awk '$3 == "cgroup2" { print $2; exit }' /proc/mounts)
  for cg in "${CGROUPS[@]}"; do
    file=${cg%%=*} value=${cg#*=}
    [[ $cg == *=* && $value != *=* && -n $value ]] || fail "Invalid format for cgroups: $cg" "CgroupFormat(\"$cg\")"
    [[ $file == /* || /$file/ == */../* || /$file/ == */./* ]] && fail "Cgroup invalid file: $cg" "CgroupInvalidFile(\"$cg\")"
    if ((10#$cgroup_version == 2)); then
      [[ -n $unified ]] || fail 'Hierarchy not found: cgroup2' 'CgroupHierarchyMissing("cgroup2")'
      grep -qw -- "${file%%.*}" "$unified/cgroup.controllers" ||
        fail "Controller ${file%%.*} is unavailable" "CgroupControllerUnavailable(\"${file%%.*}\")"
    fi
  done
fi
no_file=2048 fsize=
for limit in "${LIMITS[@]}"; do
  [[ $limit == *=* ]] || fail "Invalid format for resources limits: $limit" "ResLimitFormat(\"$limit\")"
  lname=${limit%%=*} lvalue=${limit#*=}
  [[ $lvalue =~ ^\+?[0-9]+$ ]] ||
    fail "Invalid limit value for resource: $lvalue: invalid digit found in string" "ResLimitValue(\"$lvalue\", \"invalid digit found in string\")"
  case $lname in
    fsize) fsize=$lvalue ;;
    no-file) no_file=$lvalue ;;
    *) fail "Invalid resource argument: $lname" "ResLimitArgument(\"$lname\")" ;;
  esac
done

# --- Env::run ----------------------------------------------------------------------------------------------------
mkdir -p -- "$root" 2>/dev/null || { io_error "$(mkdir -p -- "$root" 2>&1)"; fail "Failed to create directory $root: $IO_DISPLAY" "CreateDir(\"$root\", $IO_DEBUG)"; }
# copy_exec_to_chroot: a copy (never a hard link), opened with O_NOFOLLOW, refused if hard-linked.
target=$root/$exec_name
[[ -L $target ]] && fail "Failed to open $target: Too many levels of symbolic links (os error 40)" "Open(\"$target\", Os { code: 40, kind: FilesystemLoop, message: \"Too many levels of symbolic links\" })"
[[ -e $target ]] || install -m "$(stat -c %a -- "$exec_file")" /dev/null "$target"
(($(stat -c %h -- "$target") > 1)) && fail "Detected hard link at: $target" "HardLink(\"$target\")"
dd if="$exec_file" of="$target" conv=notrunc status=none

if [[ -n ${VALUE[netns]+x} ]] && ! msg=$(head -c0 -- "${VALUE[netns]}" 2>&1); then
  io_error "$msg"
  fail "Failed to open file ${VALUE[netns]}: $IO_DISPLAY" "FileOpen(\"${VALUE[netns]}\", $IO_DEBUG)"
fi
# resource_limits.rs: soft = hard = value; RLIMIT_NOFILE always (2048 unless given).
if [[ -n $fsize ]] && ! prlimit --pid $$ --fsize="$fsize:$fsize" 2>/dev/null; then
  fail 'Failed to set limit for resource: size of file' 'Setrlimit("size of file")'
fi
prlimit --pid $$ --nofile="$no_file:$no_file" 2>/dev/null ||
  fail 'Failed to set limit for resource: number of file descriptors' 'Setrlimit("number of file descriptors")'

# FOLDER_HIERARCHY, 0700; then the device nodes (placeholders, see the header).
for dir in / /dev /dev/net /run; do mkdir -p -- "$root$dir" && chmod 700 -- "$root$dir"; done
nodes=(/dev/net/tun /dev/kvm)
grep -qw userfaultfd /proc/misc 2>/dev/null && nodes+=(/dev/userfaultfd)
for node in "${nodes[@]}"; do
  [[ -e $root$node ]] && fail "Failed to create $node via mknod inside the jail: File exists (os error 17)" "MknodDev(Os { code: 17, kind: AlreadyExists, message: \"File exists\" }, \"$node\")"
  : >"$root$node"
done
if [[ -e $root/dev/urandom ]]; then
  echo 'Warning! Could not create /dev/urandom device inside jailer: Failed to create /dev/urandom via mknod inside the jail: File exists (os error 17).'
  echo 'MMDS version 2 will not be available to use.'
else
  : >"$root/dev/urandom"
fi

# exec_command: an empty environment (clean_env_vars), the jail's copy, --id and the start times, then the extra args.
read -r -a stat </proc/$$/stat
cpu_us=$(((stat[13] + stat[14]) * 1000000 / $(getconf CLK_TCK)))
command=(env -i "FAKE_FIRECRACKER_CHROOT=$root" "$target" --id "$id" --start-time-us "$start_time_us"
  --start-time-cpu-us "$cpu_us" --parent-cpu-time-us "$cpu_us" "${EXTRA[@]}")
session_leader=0
[[ ${stat[5]} == "$$" && -z ${VALUE[daemonize]+x} ]] && session_leader=1

# save_exec_file_pid: "<root>/<exec name>.pid", create_new, no newline. With --new-pid-ns the jailer clones the
# child (here: a background process; no PID namespace without root), records its pid and exits 0; otherwise it
# records its own pid and execs, so the pid the caller spawned is Firecracker's.
launch='pid_file=$1 new_pid_ns=$2 setsid_child=$3
shift 3
set -C
if ((new_pid_ns)); then
  if ((setsid_child)); then setsid "$@" & else "$@" & fi
  pid=$!
else
  pid=$$
fi
if ! printf %s "$pid" 2>/dev/null >"$pid_file"; then
  name=/${pid_file##*/}
  printf "Failed to open file %s: File exists (os error 17)\nError: FileOpen(\"%s\", Os { code: 17, kind: AlreadyExists, message: \"File exists\" })\n" "$name" "$name" >&2
  exit 1
fi
((new_pid_ns)) && exit 0
exec "$@"'
new_pid_ns=0
[[ -n ${VALUE[new-pid-ns]+x} ]] && new_pid_ns=1
pid_file=$root/$exec_name.pid
cd -- "$root" || exit 1 # the jailed process starts in its root
if [[ -n ${VALUE[daemonize]+x} ]]; then
  # Double fork + setsid, stdio to /dev/null; the caller's process exits 0 at once.
  setsid bash -c "$launch" launch "$pid_file" "$new_pid_ns" 0 "${command[@]}" </dev/null >/dev/null 2>&1 &
  exit 0
fi
exec bash -c "$launch" launch "$pid_file" "$new_pid_ns" "$session_leader" "${command[@]}"
