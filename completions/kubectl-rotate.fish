# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_kubectl_rotate_global_optspecs
    string join \n n/namespace= context= kubeconfig= cluster= user= as= as-group= request-timeout= config= color= h/help V/version
end

function __fish_kubectl_rotate_needs_command
    # Figure out if the current invocation already has a command.
    set -l cmd (commandline -opc)
    set -e cmd[1]
    argparse -s (__fish_kubectl_rotate_global_optspecs) -- $cmd 2>/dev/null
    or return
    if set -q argv[1]
        # Also print the command, so this can be used to figure out what it is.
        echo $argv[1]
        return 1
    end
    return 0
end

function __fish_kubectl_rotate_using_subcommand
    set -l cmd (__fish_kubectl_rotate_needs_command)
    test -z "$cmd"
    and return 1
    contains -- $cmd[1] $argv
end

complete -c kubectl-rotate -n "__fish_kubectl_rotate_needs_command" -s n -l namespace -d 'Namespace to work in (default: the context\'s namespace, else "default")' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_needs_command" -l context -d 'The kubeconfig context to use (default: the current context)' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_needs_command" -l kubeconfig -d 'Path to the kubeconfig file; only this file is loaded (default: $KUBECONFIG, else ~/.kube/config)' -r -F
complete -c kubectl-rotate -n "__fish_kubectl_rotate_needs_command" -l cluster -d 'The kubeconfig cluster to use, overriding the context\'s' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_needs_command" -l user -d 'The kubeconfig user to use, overriding the context\'s' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_needs_command" -l as -d 'Username to impersonate for the operation' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_needs_command" -l as-group -d 'Group to impersonate for the operation; repeat for several groups' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_needs_command" -l request-timeout -d 'How long to wait for one answer from the server before giving up, e.g. 10s, 1m, 500ms; 0 means no limit' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_needs_command" -l config -d 'The presets config file (default: $KUBECTL_ROTATE_CONFIG, else ~/.config/kubectl-rotate/config.yaml)' -r -F
complete -c kubectl-rotate -n "__fish_kubectl_rotate_needs_command" -l color -d 'When to colour the output. `auto` colours a terminal unless NO_COLOR is set or TERM=dumb' -r -f -a "auto\t''
always\t''
never\t''"
complete -c kubectl-rotate -n "__fish_kubectl_rotate_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_needs_command" -s V -l version -d 'Print version'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_needs_command" -f -a "status" -d 'Show each key of a Secret (size, last rotation, consuming workloads), never its value'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_needs_command" -f -a "secret" -d 'Rotate one key of a Secret: new value, preview, backup, guarded patch, restart, watch'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_needs_command" -f -a "rollback" -d 'Restore keys of a Secret from a backup, then restart the consumers and watch them'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_needs_command" -f -a "resume" -d 'Finish a run that stopped (Ctrl-C, a crash, an API fault) from the step it stopped in'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_needs_command" -f -a "backup" -d 'Back up keys of a Secret in the cluster or to a file, or list its backups'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_needs_command" -f -a "verify" -d 'Check a Secret\'s keys and that its consumers run on the current values'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_needs_command" -f -a "presets" -d 'List the presets: built-in ones and those of your config file'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_needs_command" -f -a "notice" -d 'Print the stakeholder notice for a preset\'s rotation, ready to paste into chat or email'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_needs_command" -f -a "completion" -d 'Print a shell completion script, or set up completion inside kubectl'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_needs_command" -f -a "openai" -d 'Rotate the OpenAI API key (the runbook\'s OpenAI procedure)'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_needs_command" -f -a "postgres" -d 'Rotate the PostgreSQL password in the database and the Secret (the runbook\'s PostgreSQL procedure)'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_needs_command" -f -a "redis" -d 'Rotate the Redis password on the server and in the Secret, with an overlap (the runbook\'s Redis procedure)'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_needs_command" -f -a "encryption-key" -d 'Rotate the data encryption key and re-encrypt the rows it protects (the runbook\'s encryption-key procedure)'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand status" -s o -l output -d 'Output format' -r -f -a "text\t'A table for people'
json\t'A stable JSON object for scripts (documented in the README)'"
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand status" -s n -l namespace -d 'Namespace to work in (default: the context\'s namespace, else "default")' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand status" -l context -d 'The kubeconfig context to use (default: the current context)' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand status" -l kubeconfig -d 'Path to the kubeconfig file; only this file is loaded (default: $KUBECONFIG, else ~/.kube/config)' -r -F
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand status" -l cluster -d 'The kubeconfig cluster to use, overriding the context\'s' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand status" -l user -d 'The kubeconfig user to use, overriding the context\'s' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand status" -l as -d 'Username to impersonate for the operation' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand status" -l as-group -d 'Group to impersonate for the operation; repeat for several groups' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand status" -l request-timeout -d 'How long to wait for one answer from the server before giving up, e.g. 10s, 1m, 500ms; 0 means no limit' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand status" -l config -d 'The presets config file (default: $KUBECTL_ROTATE_CONFIG, else ~/.config/kubectl-rotate/config.yaml)' -r -F
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand status" -l color -d 'When to colour the output. `auto` colours a terminal unless NO_COLOR is set or TERM=dumb' -r -f -a "auto\t''
always\t''
never\t''"
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand status" -s A -l all-namespaces -d 'Show Secrets in every namespace (overrides --namespace)'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand status" -l strict -d 'If true, fail when some consumers cannot be checked (you may not list CronJobs, Jobs or pods) instead of showing the others with a warning'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand status" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand status" -s V -l version -d 'Print version'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand secret" -l generate -d 'Generate the new value with the operating system\'s CSPRNG' -r -f -a "password\t'32 random bytes (see --length) in standard base64, like `openssl rand -base64 32`'
hex\t'32 random bytes (see --length) as hex'
token\t'40 URL-safe alphanumeric characters (see --length)'
fernet\t'A Fernet key: 32 random bytes in URL-safe base64 (44 characters)'"
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand secret" -l from-file -d 'Read the new value from a file, byte for byte' -r -F
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand secret" -l from-env -d 'Read the new value from an environment variable' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand secret" -l length -d 'With --generate: bytes of randomness (characters for `token`)' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand secret" -l restart -d 'Which workloads to restart: `auto` (every consumer of the key), `none`, or a comma-separated list such as deployment/api,statefulset/db' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand secret" -l timeout -d 'How long to wait for the restarted workloads to roll out' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand secret" -l dry-run -d '`client`: preview only, nothing sent. `server`: the API server validates the change and stores nothing. The value is given with `=` only, as kubectl\'s (`--dry-run` alone is `client`)' -r -f -a "none\t''
client\t''
server\t''"
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand secret" -s o -l output -d 'Output format of the result' -r -f -a "text\t'A table for people'
json\t'A stable JSON object for scripts (documented in the README)'"
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand secret" -l keep -d 'How many backups of the Secret to keep after a successful run; older ones are deleted (never one an unfinished run needs)' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand secret" -s n -l namespace -d 'Namespace to work in (default: the context\'s namespace, else "default")' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand secret" -l context -d 'The kubeconfig context to use (default: the current context)' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand secret" -l kubeconfig -d 'Path to the kubeconfig file; only this file is loaded (default: $KUBECONFIG, else ~/.kube/config)' -r -F
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand secret" -l cluster -d 'The kubeconfig cluster to use, overriding the context\'s' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand secret" -l user -d 'The kubeconfig user to use, overriding the context\'s' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand secret" -l as -d 'Username to impersonate for the operation' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand secret" -l as-group -d 'Group to impersonate for the operation; repeat for several groups' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand secret" -l request-timeout -d 'How long to wait for one answer from the server before giving up, e.g. 10s, 1m, 500ms; 0 means no limit' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand secret" -l config -d 'The presets config file (default: $KUBECTL_ROTATE_CONFIG, else ~/.config/kubectl-rotate/config.yaml)' -r -F
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand secret" -l color -d 'When to colour the output. `auto` colours a terminal unless NO_COLOR is set or TERM=dumb' -r -f -a "auto\t''
always\t''
never\t''"
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand secret" -l from-stdin -d 'Read the new value from stdin (one trailing newline is stripped)'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand secret" -l prompt -d 'Ask for the new value on the terminal, hidden, twice'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand secret" -l create-key -d 'Add the key if the Secret does not have it yet'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand secret" -l no-rollback -d 'Keep the new value when the rollout fails, instead of restoring the old one'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand secret" -s y -l yes -d 'Do not ask for confirmation'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand secret" -l show-secrets -d 'Show the old and new values in the preview instead of `***`'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand secret" -l force -d 'Change even a Secret that a controller (External Secrets, Sealed Secrets, Helm) manages, or whose consumers are failing or mid-rollout before the change'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand secret" -l strict -d 'If true, refuse to run when some consumers cannot be checked (you may not list CronJobs, Jobs or pods, which are only reported) instead of going on with a warning'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand secret" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand secret" -s V -l version -d 'Print version'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand rollback" -l to -d 'The backup to restore from (default: the newest backup of SECRET)' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand rollback" -l from-file -d 'Restore from a backup file written by `kubectl rotate backup --to-file`' -r -F
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand rollback" -l run -d 'Undo the unfinished run RUN (its id, as `kubectl rotate status` shows it): every applied step, in reverse. A run is undone as its journal recorded it: --restart, --force, --strict and --show-secrets do not apply and are refused' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand rollback" -l restart -d 'Which workloads to restart: `auto` (every consumer of the key), `none`, or a comma-separated list such as deployment/api,statefulset/db' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand rollback" -l timeout -d 'How long to wait for the restarted workloads to roll out' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand rollback" -l dry-run -d '`client`: preview only, nothing sent. `server`: the API server validates the change and stores nothing. The value is given with `=` only, as kubectl\'s (`--dry-run` alone is `client`)' -r -f -a "none\t''
client\t''
server\t''"
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand rollback" -s o -l output -d 'Output format of the result' -r -f -a "text\t'A table for people'
json\t'A stable JSON object for scripts (documented in the README)'"
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand rollback" -l keep -d 'How many backups of the Secret to keep after a successful run; older ones are deleted (never one an unfinished run needs)' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand rollback" -s n -l namespace -d 'Namespace to work in (default: the context\'s namespace, else "default")' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand rollback" -l context -d 'The kubeconfig context to use (default: the current context)' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand rollback" -l kubeconfig -d 'Path to the kubeconfig file; only this file is loaded (default: $KUBECONFIG, else ~/.kube/config)' -r -F
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand rollback" -l cluster -d 'The kubeconfig cluster to use, overriding the context\'s' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand rollback" -l user -d 'The kubeconfig user to use, overriding the context\'s' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand rollback" -l as -d 'Username to impersonate for the operation' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand rollback" -l as-group -d 'Group to impersonate for the operation; repeat for several groups' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand rollback" -l request-timeout -d 'How long to wait for one answer from the server before giving up, e.g. 10s, 1m, 500ms; 0 means no limit' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand rollback" -l config -d 'The presets config file (default: $KUBECTL_ROTATE_CONFIG, else ~/.config/kubectl-rotate/config.yaml)' -r -F
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand rollback" -l color -d 'When to colour the output. `auto` colours a terminal unless NO_COLOR is set or TERM=dumb' -r -f -a "auto\t''
always\t''
never\t''"
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand rollback" -s y -l yes -d 'Do not ask for confirmation'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand rollback" -l show-secrets -d 'Show the old and new values in the preview instead of `***`'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand rollback" -l force -d 'Change even a Secret that a controller (External Secrets, Sealed Secrets, Helm) manages, or whose consumers are failing or mid-rollout before the change'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand rollback" -l strict -d 'If true, refuse to run when some consumers cannot be checked (you may not list CronJobs, Jobs or pods, which are only reported) instead of going on with a warning'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand rollback" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand rollback" -s V -l version -d 'Print version'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand resume" -l timeout -d 'How long to wait for restarted workloads to roll out' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand resume" -s o -l output -d 'Output format of the result' -r -f -a "text\t'A table for people'
json\t'A stable JSON object for scripts (documented in the README)'"
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand resume" -l keep -d 'How many backups of the Secret to keep once the run succeeds' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand resume" -l dry-run -d '`client`: show the steps it would run, nothing sent. `server`: also send the journal\'s update with dryRun=All; nothing is stored, no lock taken. The value is given with `=` only (`--dry-run` alone is `client`)' -r -f -a "none\t''
client\t''
server\t''"
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand resume" -s n -l namespace -d 'Namespace to work in (default: the context\'s namespace, else "default")' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand resume" -l context -d 'The kubeconfig context to use (default: the current context)' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand resume" -l kubeconfig -d 'Path to the kubeconfig file; only this file is loaded (default: $KUBECONFIG, else ~/.kube/config)' -r -F
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand resume" -l cluster -d 'The kubeconfig cluster to use, overriding the context\'s' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand resume" -l user -d 'The kubeconfig user to use, overriding the context\'s' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand resume" -l as -d 'Username to impersonate for the operation' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand resume" -l as-group -d 'Group to impersonate for the operation; repeat for several groups' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand resume" -l request-timeout -d 'How long to wait for one answer from the server before giving up, e.g. 10s, 1m, 500ms; 0 means no limit' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand resume" -l config -d 'The presets config file (default: $KUBECTL_ROTATE_CONFIG, else ~/.config/kubectl-rotate/config.yaml)' -r -F
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand resume" -l color -d 'When to colour the output. `auto` colours a terminal unless NO_COLOR is set or TERM=dumb' -r -f -a "auto\t''
always\t''
never\t''"
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand resume" -s y -l yes -d 'Do not ask for confirmation'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand resume" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand resume" -s V -l version -d 'Print version'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand backup" -l to-file -d 'Write the backup to a local file instead (mode 0600, never overwritten, refused inside a git work tree); `-` writes it to stdout, e.g. to pipe into a password manager' -r -F
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand backup" -l keep -d 'Also delete older backups of the Secret so that the newest N are kept (never one an unfinished run needs; listed in the preview). Without it, no backup is deleted' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand backup" -s o -l output -d 'Output format (for --list)' -r -f -a "text\t'A table for people'
json\t'A stable JSON object for scripts (documented in the README)'"
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand backup" -s n -l namespace -d 'Namespace to work in (default: the context\'s namespace, else "default")' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand backup" -l context -d 'The kubeconfig context to use (default: the current context)' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand backup" -l kubeconfig -d 'Path to the kubeconfig file; only this file is loaded (default: $KUBECONFIG, else ~/.kube/config)' -r -F
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand backup" -l cluster -d 'The kubeconfig cluster to use, overriding the context\'s' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand backup" -l user -d 'The kubeconfig user to use, overriding the context\'s' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand backup" -l as -d 'Username to impersonate for the operation' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand backup" -l as-group -d 'Group to impersonate for the operation; repeat for several groups' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand backup" -l request-timeout -d 'How long to wait for one answer from the server before giving up, e.g. 10s, 1m, 500ms; 0 means no limit' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand backup" -l config -d 'The presets config file (default: $KUBECTL_ROTATE_CONFIG, else ~/.config/kubectl-rotate/config.yaml)' -r -F
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand backup" -l color -d 'When to colour the output. `auto` colours a terminal unless NO_COLOR is set or TERM=dumb' -r -f -a "auto\t''
always\t''
never\t''"
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand backup" -l list -d 'List the Secret\'s backups (names, times, keys, fingerprints; never values)'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand backup" -s y -l yes -d 'Do not ask for confirmation'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand backup" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand backup" -s V -l version -d 'Print version'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand verify" -l logs -d 'A regular expression each consumer pod\'s log must match, e.g. \'Secrets loaded successfully\'' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand verify" -l health -d 'An HTTP GET each consumer pod must answer with 2xx, through the API server\'s pod proxy' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand verify" -s o -l output -d 'Output format' -r -f -a "text\t'A table for people'
json\t'A stable JSON object for scripts (documented in the README)'"
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand verify" -s n -l namespace -d 'Namespace to work in (default: the context\'s namespace, else "default")' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand verify" -l context -d 'The kubeconfig context to use (default: the current context)' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand verify" -l kubeconfig -d 'Path to the kubeconfig file; only this file is loaded (default: $KUBECONFIG, else ~/.kube/config)' -r -F
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand verify" -l cluster -d 'The kubeconfig cluster to use, overriding the context\'s' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand verify" -l user -d 'The kubeconfig user to use, overriding the context\'s' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand verify" -l as -d 'Username to impersonate for the operation' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand verify" -l as-group -d 'Group to impersonate for the operation; repeat for several groups' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand verify" -l request-timeout -d 'How long to wait for one answer from the server before giving up, e.g. 10s, 1m, 500ms; 0 means no limit' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand verify" -l config -d 'The presets config file (default: $KUBECTL_ROTATE_CONFIG, else ~/.config/kubectl-rotate/config.yaml)' -r -F
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand verify" -l color -d 'When to colour the output. `auto` colours a terminal unless NO_COLOR is set or TERM=dumb' -r -f -a "auto\t''
always\t''
never\t''"
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand verify" -l strict -d 'If true, fail (exit 2) when some consumers cannot be checked (you may not list CronJobs, Jobs or pods) instead of going on with a warning'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand verify" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand verify" -s V -l version -d 'Print version'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand presets" -s o -l output -d 'Output format' -r -f -a "text\t'A table for people'
json\t'A stable JSON object for scripts (documented in the README)'"
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand presets" -s n -l namespace -d 'Namespace to work in (default: the context\'s namespace, else "default")' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand presets" -l context -d 'The kubeconfig context to use (default: the current context)' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand presets" -l kubeconfig -d 'Path to the kubeconfig file; only this file is loaded (default: $KUBECONFIG, else ~/.kube/config)' -r -F
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand presets" -l cluster -d 'The kubeconfig cluster to use, overriding the context\'s' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand presets" -l user -d 'The kubeconfig user to use, overriding the context\'s' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand presets" -l as -d 'Username to impersonate for the operation' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand presets" -l as-group -d 'Group to impersonate for the operation; repeat for several groups' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand presets" -l request-timeout -d 'How long to wait for one answer from the server before giving up, e.g. 10s, 1m, 500ms; 0 means no limit' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand presets" -l config -d 'The presets config file (default: $KUBECTL_ROTATE_CONFIG, else ~/.config/kubectl-rotate/config.yaml)' -r -F
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand presets" -l color -d 'When to colour the output. `auto` colours a terminal unless NO_COLOR is set or TERM=dumb' -r -f -a "auto\t''
always\t''
never\t''"
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand presets" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand presets" -s V -l version -d 'Print version'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand notice" -l date -d 'When the rotation happens, as it should read in the notice' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand notice" -l contact -d 'Who to contact about issues (a person, channel or address)' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand notice" -s n -l namespace -d 'Namespace to work in (default: the context\'s namespace, else "default")' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand notice" -l context -d 'The kubeconfig context to use (default: the current context)' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand notice" -l kubeconfig -d 'Path to the kubeconfig file; only this file is loaded (default: $KUBECONFIG, else ~/.kube/config)' -r -F
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand notice" -l cluster -d 'The kubeconfig cluster to use, overriding the context\'s' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand notice" -l user -d 'The kubeconfig user to use, overriding the context\'s' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand notice" -l as -d 'Username to impersonate for the operation' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand notice" -l as-group -d 'Group to impersonate for the operation; repeat for several groups' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand notice" -l request-timeout -d 'How long to wait for one answer from the server before giving up, e.g. 10s, 1m, 500ms; 0 means no limit' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand notice" -l config -d 'The presets config file (default: $KUBECTL_ROTATE_CONFIG, else ~/.config/kubectl-rotate/config.yaml)' -r -F
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand notice" -l color -d 'When to colour the output. `auto` colours a terminal unless NO_COLOR is set or TERM=dumb' -r -f -a "auto\t''
always\t''
never\t''"
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand notice" -s h -l help -d 'Print help'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand notice" -s V -l version -d 'Print version'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand completion" -s n -l namespace -d 'Namespace to work in (default: the context\'s namespace, else "default")' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand completion" -l context -d 'The kubeconfig context to use (default: the current context)' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand completion" -l kubeconfig -d 'Path to the kubeconfig file; only this file is loaded (default: $KUBECONFIG, else ~/.kube/config)' -r -F
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand completion" -l cluster -d 'The kubeconfig cluster to use, overriding the context\'s' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand completion" -l user -d 'The kubeconfig user to use, overriding the context\'s' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand completion" -l as -d 'Username to impersonate for the operation' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand completion" -l as-group -d 'Group to impersonate for the operation; repeat for several groups' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand completion" -l request-timeout -d 'How long to wait for one answer from the server before giving up, e.g. 10s, 1m, 500ms; 0 means no limit' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand completion" -l config -d 'The presets config file (default: $KUBECTL_ROTATE_CONFIG, else ~/.config/kubectl-rotate/config.yaml)' -r -F
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand completion" -l color -d 'When to colour the output. `auto` colours a terminal unless NO_COLOR is set or TERM=dumb' -r -f -a "auto\t''
always\t''
never\t''"
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand completion" -l install -d 'With `kubectl`: create the `kubectl_complete-rotate` link kubectl looks for, and say where'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand completion" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand completion" -s V -l version -d 'Print version'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand openai" -l generate -d 'Generate the new value with the operating system\'s CSPRNG' -r -f -a "password\t'32 random bytes (see --length) in standard base64, like `openssl rand -base64 32`'
hex\t'32 random bytes (see --length) as hex'
token\t'40 URL-safe alphanumeric characters (see --length)'
fernet\t'A Fernet key: 32 random bytes in URL-safe base64 (44 characters)'"
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand openai" -l from-file -d 'Read the new value from a file, byte for byte' -r -F
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand openai" -l from-env -d 'Read the new value from an environment variable' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand openai" -l length -d 'With --generate: bytes of randomness (characters for `token`)' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand openai" -l restart -d 'Which workloads to restart: `auto` (every consumer of the key), `none`, or a comma-separated list such as deployment/api,statefulset/db' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand openai" -l timeout -d 'How long to wait for the restarted workloads to roll out' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand openai" -l dry-run -d '`client`: preview only, nothing sent. `server`: the API server validates the change and stores nothing. The value is given with `=` only, as kubectl\'s (`--dry-run` alone is `client`)' -r -f -a "none\t''
client\t''
server\t''"
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand openai" -s o -l output -d 'Output format of the result' -r -f -a "text\t'A table for people'
json\t'A stable JSON object for scripts (documented in the README)'"
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand openai" -l keep -d 'How many backups of the Secret to keep after a successful run; older ones are deleted (never one an unfinished run needs)' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand openai" -l openai-base-url -d 'The OpenAI API\'s base URL for --check-key' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand openai" -l strategy -d 'PostgreSQL presets: `single-user` changes the role\'s password in place; `alternating-users` switches the Secret between two roles, for no downtime. Redis presets: `overlap` (Redis 6+) keeps old and new password valid during the rollout; `requirepass` replaces it at once. Data encryption keys: `scale-down` stops the consumers during the migration; `keyring` (no downtime) needs an app that accepts a key list (default: the preset\'s)' -r -f -a "single-user\t'PostgreSQL: one role; its password changes in place (old pods fail new logins until replaced)'
alternating-users\t'PostgreSQL: two roles with the same rights; each rotation switches the Secret to the other one'
overlap\t'Redis 6+: the user has both passwords while the pods roll over; the old one goes last'
requirepass\t'Redis: CONFIG SET requirepass replaces the password at once (a server without ACLs)'
scale-down\t'Data encryption key: the runbook\'s procedure; the consumers are stopped during the migration'
keyring\t'Data encryption key, no downtime: the Secret holds new,old while the rows move (the app must accept a key list)'"
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand openai" -l backup-dir -d 'A new directory for the key file and the database dump (default: ./SECRET-RUN_ID); refused inside a git work tree' -r -F
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand openai" -l key-backup-file -d 'The runbook\'s copy of the current key, for a password manager: a new file, mode 0600 (default: DIR/KEY-backup.txt)' -r -F
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand openai" -l db-backup-file -d 'pg_dump of the database, run in its pod through the API server: a new file, mode 0600, checked complete before anything changes (default: DIR/DATABASE.sql)' -r -F
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand openai" -s n -l namespace -d 'Namespace to work in (default: the context\'s namespace, else "default")' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand openai" -l context -d 'The kubeconfig context to use (default: the current context)' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand openai" -l kubeconfig -d 'Path to the kubeconfig file; only this file is loaded (default: $KUBECONFIG, else ~/.kube/config)' -r -F
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand openai" -l cluster -d 'The kubeconfig cluster to use, overriding the context\'s' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand openai" -l user -d 'The kubeconfig user to use, overriding the context\'s' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand openai" -l as -d 'Username to impersonate for the operation' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand openai" -l as-group -d 'Group to impersonate for the operation; repeat for several groups' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand openai" -l request-timeout -d 'How long to wait for one answer from the server before giving up, e.g. 10s, 1m, 500ms; 0 means no limit' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand openai" -l config -d 'The presets config file (default: $KUBECTL_ROTATE_CONFIG, else ~/.config/kubectl-rotate/config.yaml)' -r -F
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand openai" -l color -d 'When to colour the output. `auto` colours a terminal unless NO_COLOR is set or TERM=dumb' -r -f -a "auto\t''
always\t''
never\t''"
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand openai" -l from-stdin -d 'Read the new value from stdin (one trailing newline is stripped)'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand openai" -l prompt -d 'Ask for the new value on the terminal, hidden, twice'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand openai" -l create-key -d 'Add the key if the Secret does not have it yet'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand openai" -l no-rollback -d 'Keep the new value when the rollout fails, instead of restoring the old one'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand openai" -s y -l yes -d 'Do not ask for confirmation'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand openai" -l show-secrets -d 'Show the old and new values in the preview instead of `***`'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand openai" -l force -d 'Change even a Secret that a controller (External Secrets, Sealed Secrets, Helm) manages, or whose consumers are failing or mid-rollout before the change'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand openai" -l strict -d 'If true, refuse to run when some consumers cannot be checked (you may not list CronJobs, Jobs or pods, which are only reported) instead of going on with a warning'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand openai" -l check-key -d 'Before anything is written, ask the OpenAI API whether the new key works (GET /v1/models): valid, invalid, missing scopes, or a network error'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand openai" -l no-db-backup -d 'Do not dump the database (you have a backup of your own, or it is outside the cluster)'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand openai" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand openai" -s V -l version -d 'Print version'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand postgres" -l generate -d 'Generate the new value with the operating system\'s CSPRNG' -r -f -a "password\t'32 random bytes (see --length) in standard base64, like `openssl rand -base64 32`'
hex\t'32 random bytes (see --length) as hex'
token\t'40 URL-safe alphanumeric characters (see --length)'
fernet\t'A Fernet key: 32 random bytes in URL-safe base64 (44 characters)'"
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand postgres" -l from-file -d 'Read the new value from a file, byte for byte' -r -F
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand postgres" -l from-env -d 'Read the new value from an environment variable' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand postgres" -l length -d 'With --generate: bytes of randomness (characters for `token`)' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand postgres" -l restart -d 'Which workloads to restart: `auto` (every consumer of the key), `none`, or a comma-separated list such as deployment/api,statefulset/db' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand postgres" -l timeout -d 'How long to wait for the restarted workloads to roll out' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand postgres" -l dry-run -d '`client`: preview only, nothing sent. `server`: the API server validates the change and stores nothing. The value is given with `=` only, as kubectl\'s (`--dry-run` alone is `client`)' -r -f -a "none\t''
client\t''
server\t''"
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand postgres" -s o -l output -d 'Output format of the result' -r -f -a "text\t'A table for people'
json\t'A stable JSON object for scripts (documented in the README)'"
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand postgres" -l keep -d 'How many backups of the Secret to keep after a successful run; older ones are deleted (never one an unfinished run needs)' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand postgres" -l openai-base-url -d 'The OpenAI API\'s base URL for --check-key' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand postgres" -l strategy -d 'PostgreSQL presets: `single-user` changes the role\'s password in place; `alternating-users` switches the Secret between two roles, for no downtime. Redis presets: `overlap` (Redis 6+) keeps old and new password valid during the rollout; `requirepass` replaces it at once. Data encryption keys: `scale-down` stops the consumers during the migration; `keyring` (no downtime) needs an app that accepts a key list (default: the preset\'s)' -r -f -a "single-user\t'PostgreSQL: one role; its password changes in place (old pods fail new logins until replaced)'
alternating-users\t'PostgreSQL: two roles with the same rights; each rotation switches the Secret to the other one'
overlap\t'Redis 6+: the user has both passwords while the pods roll over; the old one goes last'
requirepass\t'Redis: CONFIG SET requirepass replaces the password at once (a server without ACLs)'
scale-down\t'Data encryption key: the runbook\'s procedure; the consumers are stopped during the migration'
keyring\t'Data encryption key, no downtime: the Secret holds new,old while the rows move (the app must accept a key list)'"
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand postgres" -l backup-dir -d 'A new directory for the key file and the database dump (default: ./SECRET-RUN_ID); refused inside a git work tree' -r -F
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand postgres" -l key-backup-file -d 'The runbook\'s copy of the current key, for a password manager: a new file, mode 0600 (default: DIR/KEY-backup.txt)' -r -F
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand postgres" -l db-backup-file -d 'pg_dump of the database, run in its pod through the API server: a new file, mode 0600, checked complete before anything changes (default: DIR/DATABASE.sql)' -r -F
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand postgres" -s n -l namespace -d 'Namespace to work in (default: the context\'s namespace, else "default")' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand postgres" -l context -d 'The kubeconfig context to use (default: the current context)' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand postgres" -l kubeconfig -d 'Path to the kubeconfig file; only this file is loaded (default: $KUBECONFIG, else ~/.kube/config)' -r -F
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand postgres" -l cluster -d 'The kubeconfig cluster to use, overriding the context\'s' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand postgres" -l user -d 'The kubeconfig user to use, overriding the context\'s' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand postgres" -l as -d 'Username to impersonate for the operation' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand postgres" -l as-group -d 'Group to impersonate for the operation; repeat for several groups' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand postgres" -l request-timeout -d 'How long to wait for one answer from the server before giving up, e.g. 10s, 1m, 500ms; 0 means no limit' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand postgres" -l config -d 'The presets config file (default: $KUBECTL_ROTATE_CONFIG, else ~/.config/kubectl-rotate/config.yaml)' -r -F
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand postgres" -l color -d 'When to colour the output. `auto` colours a terminal unless NO_COLOR is set or TERM=dumb' -r -f -a "auto\t''
always\t''
never\t''"
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand postgres" -l from-stdin -d 'Read the new value from stdin (one trailing newline is stripped)'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand postgres" -l prompt -d 'Ask for the new value on the terminal, hidden, twice'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand postgres" -l create-key -d 'Add the key if the Secret does not have it yet'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand postgres" -l no-rollback -d 'Keep the new value when the rollout fails, instead of restoring the old one'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand postgres" -s y -l yes -d 'Do not ask for confirmation'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand postgres" -l show-secrets -d 'Show the old and new values in the preview instead of `***`'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand postgres" -l force -d 'Change even a Secret that a controller (External Secrets, Sealed Secrets, Helm) manages, or whose consumers are failing or mid-rollout before the change'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand postgres" -l strict -d 'If true, refuse to run when some consumers cannot be checked (you may not list CronJobs, Jobs or pods, which are only reported) instead of going on with a warning'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand postgres" -l check-key -d 'Before anything is written, ask the OpenAI API whether the new key works (GET /v1/models): valid, invalid, missing scopes, or a network error'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand postgres" -l no-db-backup -d 'Do not dump the database (you have a backup of your own, or it is outside the cluster)'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand postgres" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand postgres" -s V -l version -d 'Print version'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand redis" -l generate -d 'Generate the new value with the operating system\'s CSPRNG' -r -f -a "password\t'32 random bytes (see --length) in standard base64, like `openssl rand -base64 32`'
hex\t'32 random bytes (see --length) as hex'
token\t'40 URL-safe alphanumeric characters (see --length)'
fernet\t'A Fernet key: 32 random bytes in URL-safe base64 (44 characters)'"
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand redis" -l from-file -d 'Read the new value from a file, byte for byte' -r -F
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand redis" -l from-env -d 'Read the new value from an environment variable' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand redis" -l length -d 'With --generate: bytes of randomness (characters for `token`)' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand redis" -l restart -d 'Which workloads to restart: `auto` (every consumer of the key), `none`, or a comma-separated list such as deployment/api,statefulset/db' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand redis" -l timeout -d 'How long to wait for the restarted workloads to roll out' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand redis" -l dry-run -d '`client`: preview only, nothing sent. `server`: the API server validates the change and stores nothing. The value is given with `=` only, as kubectl\'s (`--dry-run` alone is `client`)' -r -f -a "none\t''
client\t''
server\t''"
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand redis" -s o -l output -d 'Output format of the result' -r -f -a "text\t'A table for people'
json\t'A stable JSON object for scripts (documented in the README)'"
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand redis" -l keep -d 'How many backups of the Secret to keep after a successful run; older ones are deleted (never one an unfinished run needs)' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand redis" -l openai-base-url -d 'The OpenAI API\'s base URL for --check-key' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand redis" -l strategy -d 'PostgreSQL presets: `single-user` changes the role\'s password in place; `alternating-users` switches the Secret between two roles, for no downtime. Redis presets: `overlap` (Redis 6+) keeps old and new password valid during the rollout; `requirepass` replaces it at once. Data encryption keys: `scale-down` stops the consumers during the migration; `keyring` (no downtime) needs an app that accepts a key list (default: the preset\'s)' -r -f -a "single-user\t'PostgreSQL: one role; its password changes in place (old pods fail new logins until replaced)'
alternating-users\t'PostgreSQL: two roles with the same rights; each rotation switches the Secret to the other one'
overlap\t'Redis 6+: the user has both passwords while the pods roll over; the old one goes last'
requirepass\t'Redis: CONFIG SET requirepass replaces the password at once (a server without ACLs)'
scale-down\t'Data encryption key: the runbook\'s procedure; the consumers are stopped during the migration'
keyring\t'Data encryption key, no downtime: the Secret holds new,old while the rows move (the app must accept a key list)'"
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand redis" -l backup-dir -d 'A new directory for the key file and the database dump (default: ./SECRET-RUN_ID); refused inside a git work tree' -r -F
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand redis" -l key-backup-file -d 'The runbook\'s copy of the current key, for a password manager: a new file, mode 0600 (default: DIR/KEY-backup.txt)' -r -F
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand redis" -l db-backup-file -d 'pg_dump of the database, run in its pod through the API server: a new file, mode 0600, checked complete before anything changes (default: DIR/DATABASE.sql)' -r -F
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand redis" -s n -l namespace -d 'Namespace to work in (default: the context\'s namespace, else "default")' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand redis" -l context -d 'The kubeconfig context to use (default: the current context)' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand redis" -l kubeconfig -d 'Path to the kubeconfig file; only this file is loaded (default: $KUBECONFIG, else ~/.kube/config)' -r -F
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand redis" -l cluster -d 'The kubeconfig cluster to use, overriding the context\'s' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand redis" -l user -d 'The kubeconfig user to use, overriding the context\'s' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand redis" -l as -d 'Username to impersonate for the operation' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand redis" -l as-group -d 'Group to impersonate for the operation; repeat for several groups' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand redis" -l request-timeout -d 'How long to wait for one answer from the server before giving up, e.g. 10s, 1m, 500ms; 0 means no limit' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand redis" -l config -d 'The presets config file (default: $KUBECTL_ROTATE_CONFIG, else ~/.config/kubectl-rotate/config.yaml)' -r -F
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand redis" -l color -d 'When to colour the output. `auto` colours a terminal unless NO_COLOR is set or TERM=dumb' -r -f -a "auto\t''
always\t''
never\t''"
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand redis" -l from-stdin -d 'Read the new value from stdin (one trailing newline is stripped)'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand redis" -l prompt -d 'Ask for the new value on the terminal, hidden, twice'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand redis" -l create-key -d 'Add the key if the Secret does not have it yet'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand redis" -l no-rollback -d 'Keep the new value when the rollout fails, instead of restoring the old one'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand redis" -s y -l yes -d 'Do not ask for confirmation'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand redis" -l show-secrets -d 'Show the old and new values in the preview instead of `***`'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand redis" -l force -d 'Change even a Secret that a controller (External Secrets, Sealed Secrets, Helm) manages, or whose consumers are failing or mid-rollout before the change'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand redis" -l strict -d 'If true, refuse to run when some consumers cannot be checked (you may not list CronJobs, Jobs or pods, which are only reported) instead of going on with a warning'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand redis" -l check-key -d 'Before anything is written, ask the OpenAI API whether the new key works (GET /v1/models): valid, invalid, missing scopes, or a network error'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand redis" -l no-db-backup -d 'Do not dump the database (you have a backup of your own, or it is outside the cluster)'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand redis" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand redis" -s V -l version -d 'Print version'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand encryption-key" -l generate -d 'Generate the new value with the operating system\'s CSPRNG' -r -f -a "password\t'32 random bytes (see --length) in standard base64, like `openssl rand -base64 32`'
hex\t'32 random bytes (see --length) as hex'
token\t'40 URL-safe alphanumeric characters (see --length)'
fernet\t'A Fernet key: 32 random bytes in URL-safe base64 (44 characters)'"
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand encryption-key" -l from-file -d 'Read the new value from a file, byte for byte' -r -F
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand encryption-key" -l from-env -d 'Read the new value from an environment variable' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand encryption-key" -l length -d 'With --generate: bytes of randomness (characters for `token`)' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand encryption-key" -l restart -d 'Which workloads to restart: `auto` (every consumer of the key), `none`, or a comma-separated list such as deployment/api,statefulset/db' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand encryption-key" -l timeout -d 'How long to wait for the restarted workloads to roll out' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand encryption-key" -l dry-run -d '`client`: preview only, nothing sent. `server`: the API server validates the change and stores nothing. The value is given with `=` only, as kubectl\'s (`--dry-run` alone is `client`)' -r -f -a "none\t''
client\t''
server\t''"
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand encryption-key" -s o -l output -d 'Output format of the result' -r -f -a "text\t'A table for people'
json\t'A stable JSON object for scripts (documented in the README)'"
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand encryption-key" -l keep -d 'How many backups of the Secret to keep after a successful run; older ones are deleted (never one an unfinished run needs)' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand encryption-key" -l openai-base-url -d 'The OpenAI API\'s base URL for --check-key' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand encryption-key" -l strategy -d 'PostgreSQL presets: `single-user` changes the role\'s password in place; `alternating-users` switches the Secret between two roles, for no downtime. Redis presets: `overlap` (Redis 6+) keeps old and new password valid during the rollout; `requirepass` replaces it at once. Data encryption keys: `scale-down` stops the consumers during the migration; `keyring` (no downtime) needs an app that accepts a key list (default: the preset\'s)' -r -f -a "single-user\t'PostgreSQL: one role; its password changes in place (old pods fail new logins until replaced)'
alternating-users\t'PostgreSQL: two roles with the same rights; each rotation switches the Secret to the other one'
overlap\t'Redis 6+: the user has both passwords while the pods roll over; the old one goes last'
requirepass\t'Redis: CONFIG SET requirepass replaces the password at once (a server without ACLs)'
scale-down\t'Data encryption key: the runbook\'s procedure; the consumers are stopped during the migration'
keyring\t'Data encryption key, no downtime: the Secret holds new,old while the rows move (the app must accept a key list)'"
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand encryption-key" -l backup-dir -d 'A new directory for the key file and the database dump (default: ./SECRET-RUN_ID); refused inside a git work tree' -r -F
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand encryption-key" -l key-backup-file -d 'The runbook\'s copy of the current key, for a password manager: a new file, mode 0600 (default: DIR/KEY-backup.txt)' -r -F
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand encryption-key" -l db-backup-file -d 'pg_dump of the database, run in its pod through the API server: a new file, mode 0600, checked complete before anything changes (default: DIR/DATABASE.sql)' -r -F
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand encryption-key" -s n -l namespace -d 'Namespace to work in (default: the context\'s namespace, else "default")' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand encryption-key" -l context -d 'The kubeconfig context to use (default: the current context)' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand encryption-key" -l kubeconfig -d 'Path to the kubeconfig file; only this file is loaded (default: $KUBECONFIG, else ~/.kube/config)' -r -F
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand encryption-key" -l cluster -d 'The kubeconfig cluster to use, overriding the context\'s' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand encryption-key" -l user -d 'The kubeconfig user to use, overriding the context\'s' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand encryption-key" -l as -d 'Username to impersonate for the operation' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand encryption-key" -l as-group -d 'Group to impersonate for the operation; repeat for several groups' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand encryption-key" -l request-timeout -d 'How long to wait for one answer from the server before giving up, e.g. 10s, 1m, 500ms; 0 means no limit' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand encryption-key" -l config -d 'The presets config file (default: $KUBECTL_ROTATE_CONFIG, else ~/.config/kubectl-rotate/config.yaml)' -r -F
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand encryption-key" -l color -d 'When to colour the output. `auto` colours a terminal unless NO_COLOR is set or TERM=dumb' -r -f -a "auto\t''
always\t''
never\t''"
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand encryption-key" -l from-stdin -d 'Read the new value from stdin (one trailing newline is stripped)'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand encryption-key" -l prompt -d 'Ask for the new value on the terminal, hidden, twice'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand encryption-key" -l create-key -d 'Add the key if the Secret does not have it yet'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand encryption-key" -l no-rollback -d 'Keep the new value when the rollout fails, instead of restoring the old one'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand encryption-key" -s y -l yes -d 'Do not ask for confirmation'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand encryption-key" -l show-secrets -d 'Show the old and new values in the preview instead of `***`'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand encryption-key" -l force -d 'Change even a Secret that a controller (External Secrets, Sealed Secrets, Helm) manages, or whose consumers are failing or mid-rollout before the change'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand encryption-key" -l strict -d 'If true, refuse to run when some consumers cannot be checked (you may not list CronJobs, Jobs or pods, which are only reported) instead of going on with a warning'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand encryption-key" -l check-key -d 'Before anything is written, ask the OpenAI API whether the new key works (GET /v1/models): valid, invalid, missing scopes, or a network error'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand encryption-key" -l no-db-backup -d 'Do not dump the database (you have a backup of your own, or it is outside the cluster)'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand encryption-key" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand encryption-key" -s V -l version -d 'Print version'
