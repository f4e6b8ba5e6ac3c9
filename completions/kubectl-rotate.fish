# Print an optspec for argparse to handle cmd's options that are independent of any subcommand.
function __fish_kubectl_rotate_global_optspecs
    string join \n n/namespace= context= kubeconfig= cluster= user= as= as-group= request-timeout= color= h/help V/version
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
complete -c kubectl-rotate -n "__fish_kubectl_rotate_needs_command" -l color -d 'When to colour the output. `auto` colours a terminal unless NO_COLOR is set or TERM=dumb' -r -f -a "auto\t''
always\t''
never\t''"
complete -c kubectl-rotate -n "__fish_kubectl_rotate_needs_command" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_needs_command" -s V -l version -d 'Print version'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_needs_command" -f -a "status" -d 'Show each key of a Secret (size, last rotation, consuming workloads), never its value'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_needs_command" -f -a "completion" -d 'Print a shell completion script, or set up completion inside kubectl'
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
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand status" -l color -d 'When to colour the output. `auto` colours a terminal unless NO_COLOR is set or TERM=dumb' -r -f -a "auto\t''
always\t''
never\t''"
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand status" -s A -l all-namespaces -d 'Show Secrets in every namespace (overrides --namespace)'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand status" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand status" -s V -l version -d 'Print version'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand completion" -s n -l namespace -d 'Namespace to work in (default: the context\'s namespace, else "default")' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand completion" -l context -d 'The kubeconfig context to use (default: the current context)' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand completion" -l kubeconfig -d 'Path to the kubeconfig file; only this file is loaded (default: $KUBECONFIG, else ~/.kube/config)' -r -F
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand completion" -l cluster -d 'The kubeconfig cluster to use, overriding the context\'s' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand completion" -l user -d 'The kubeconfig user to use, overriding the context\'s' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand completion" -l as -d 'Username to impersonate for the operation' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand completion" -l as-group -d 'Group to impersonate for the operation; repeat for several groups' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand completion" -l request-timeout -d 'How long to wait for one answer from the server before giving up, e.g. 10s, 1m, 500ms; 0 means no limit' -r
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand completion" -l color -d 'When to colour the output. `auto` colours a terminal unless NO_COLOR is set or TERM=dumb' -r -f -a "auto\t''
always\t''
never\t''"
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand completion" -l install -d 'With `kubectl`: create the `kubectl_complete-rotate` link kubectl looks for, and say where'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand completion" -s h -l help -d 'Print help (see more with \'--help\')'
complete -c kubectl-rotate -n "__fish_kubectl_rotate_using_subcommand completion" -s V -l version -d 'Print version'
