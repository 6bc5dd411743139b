package dev.chunkscope.client;

import io.grpc.EquivalentAddressGroup;
import io.grpc.NameResolver;
import io.grpc.NameResolverProvider;
import io.grpc.NameResolverRegistry;
import io.grpc.Status;
import io.grpc.StatusOr;
import io.grpc.health.v1.HealthGrpc;
import java.net.InetAddress;
import java.net.InetSocketAddress;
import java.net.SocketAddress;
import java.net.URI;
import java.net.UnknownHostException;
import java.util.ArrayList;
import java.util.LinkedHashMap;
import java.util.List;
import java.util.Map;
import java.util.concurrent.Executor;

/**
 * Several replicas behind one client: the gRPC service config (round_robin, retries of the
 * idempotent RPCs) and a name resolver for a comma-separated list of {@code host:port}.
 */
final class Replicas {
  private Replicas() {}

  /**
   * The RPCs retried when a replica answers UNAVAILABLE (it is down, restarting or draining), by
   * service: they only read server state or compute from their request, so running one twice
   * changes nothing. The others change state (RegisterModel, UnregisterModel, ExtractDictionary,
   * DeleteDictionary, ImportDictionary): a call that failed mid-way may already have taken effect,
   * and a retry could register, store or delete twice. StreamDetect is a bidirectional stream whose
   * replies depend on what was sent before; it is not retried either. Server streams (Generate,
   * ExportDictionary, the analysis streams) are retried only until their first reply arrives, as
   * gRPC does for every stream.
   */
  static final Map<String, List<String>> IDEMPOTENT_METHODS =
      Map.of(
          "chunkscope.v1.ModelService",
          List.of("GetModel", "ListModels", "ListHookPoints"),
          "chunkscope.v1.DictionaryService",
          List.of("GetDictionary", "ListDictionaries", "ExportDictionary"),
          "chunkscope.v1.DetectionService",
          List.of("Detect"),
          "chunkscope.v1.PerturbationService",
          List.of("Perturb", "Generate"),
          "chunkscope.v1.AnalysisService",
          List.of(
              "ConnectionCost",
              "CompareRepresentations",
              "LayerSimilarity",
              "OptimizeNeuronLayout"),
          HealthGrpc.SERVICE_NAME,
          List.of("Check"));

  /**
   * The channel's service config: round_robin over every address of the target; on the idempotent
   * methods up to 4 attempts, waiting a random time up to 0.1 s, 0.2 s, 0.4 s (at most 1 s) between
   * them, for UNAVAILABLE only. (grpc-java wants JSON numbers as Doubles.)
   */
  static Map<String, Object> serviceConfig() {
    List<Object> names = new ArrayList<>();
    IDEMPOTENT_METHODS.forEach(
        (service, methods) -> {
          for (String method : methods) {
            names.add(Map.of("service", service, "method", method));
          }
        });
    Map<String, Object> retryPolicy = new LinkedHashMap<>();
    retryPolicy.put("maxAttempts", 4.0);
    retryPolicy.put("initialBackoff", "0.1s");
    retryPolicy.put("maxBackoff", "1s");
    retryPolicy.put("backoffMultiplier", 2.0);
    retryPolicy.put("retryableStatusCodes", List.of("UNAVAILABLE"));
    Map<String, Object> config = new LinkedHashMap<>();
    config.put("loadBalancingConfig", List.of(Map.of("round_robin", Map.of())));
    config.put("methodConfig", List.of(Map.of("name", names, "retryPolicy", retryPolicy)));
    return config;
  }

  /** The scheme of the static resolver: {@code chunkscope-static:///host:port,host:port}. */
  static final String SCHEME = "chunkscope-static";

  private static boolean registered;

  /**
   * The gRPC target for an address: a comma-separated list of {@code host:port} becomes a target of
   * the static resolver (registered once, in the default registry); anything else (one {@code
   * host:port}, {@code dns:///name:port}, ...) is returned as is.
   */
  static synchronized String target(String address) {
    if (!address.contains(",") || address.contains(":/")) {
      return address;
    }
    List<String> entries = entries(address);
    if (entries.size() == 1) {
      return entries.get(0);
    }
    if (!registered) {
      NameResolverRegistry.getDefaultRegistry().register(new StaticProvider());
      registered = true;
    }
    // URI paths take no brackets: IPv6 literals are escaped (URI.getPath() unescapes them).
    return SCHEME + ":///" + String.join(",", entries).replace("[", "%5B").replace("]", "%5D");
  }

  private static List<String> entries(String list) {
    List<String> entries = new ArrayList<>();
    for (String entry : list.split(",")) {
      entry = entry.strip();
      if (entry.isEmpty()) {
        continue;
      }
      int colon = entry.lastIndexOf(':');
      if (colon <= 0 || !entry.substring(colon + 1).matches("\\d+")) {
        throw new IllegalArgumentException(
            "\"" + entry + "\" in the address list is not host:port");
      }
      entries.add(entry);
    }
    if (entries.isEmpty()) {
      throw new IllegalArgumentException("no address in \"" + list + "\"");
    }
    return entries;
  }

  /** Resolves {@code chunkscope-static:///a:1,b:2} to one address group per entry. */
  private static final class StaticProvider extends NameResolverProvider {
    @Override
    protected boolean isAvailable() {
      return true;
    }

    @Override
    protected int priority() {
      return 5;
    }

    @Override
    public String getDefaultScheme() {
      return SCHEME;
    }

    @Override
    public NameResolver newNameResolver(URI targetUri, NameResolver.Args args) {
      if (!SCHEME.equals(targetUri.getScheme())) {
        return null;
      }
      return new StaticResolver(entries(targetUri.getPath().substring(1)), args);
    }
  }

  /**
   * One address group per listed entry, holding every address of its host (resolved when the
   * channel starts and whenever it asks again, off the channel's own thread), so round_robin
   * spreads calls over the entries and a subchannel tries a dual-stack name's addresses in turn.
   */
  private static final class StaticResolver extends NameResolver {
    private final List<String> entries;
    private final Executor offload;
    private Listener2 listener;

    StaticResolver(List<String> entries, Args args) {
      this.entries = entries;
      Executor executor = args.getOffloadExecutor();
      this.offload = executor != null ? executor : Runnable::run;
    }

    @Override
    public String getServiceAuthority() {
      return entries.get(0); // what TLS checks, unless the builder overrides the authority
    }

    @Override
    public void start(Listener2 listener) {
      this.listener = listener;
      refresh();
    }

    @Override
    public void refresh() {
      offload.execute(this::resolve);
    }

    private void resolve() {
      List<EquivalentAddressGroup> groups = new ArrayList<>();
      try {
        for (String entry : entries) {
          int colon = entry.lastIndexOf(':');
          String host = entry.substring(0, colon).replace("[", "").replace("]", "");
          int port = Integer.parseInt(entry.substring(colon + 1));
          List<SocketAddress> addresses = new ArrayList<>();
          for (InetAddress ip : InetAddress.getAllByName(host)) {
            addresses.add(new InetSocketAddress(ip, port));
          }
          groups.add(new EquivalentAddressGroup(addresses));
        }
      } catch (UnknownHostException | RuntimeException failed) {
        listener.onError(
            Status.UNAVAILABLE.withDescription("resolving " + entries).withCause(failed));
        return;
      }
      listener.onResult(
          ResolutionResult.newBuilder().setAddressesOrError(StatusOr.fromValue(groups)).build());
    }

    @Override
    public void shutdown() {}
  }
}
