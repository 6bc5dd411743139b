package dev.chunkscope.client;

import static org.junit.jupiter.api.Assertions.fail;

import java.util.Map;

/** The live server's state, from the CHUNKSCOPE_TEST_* variables scripts/client_fixture.py sets. */
final class Fixture {
  private Fixture() {}

  /** The variable {@code CHUNKSCOPE_TEST_<name>}; fails the test when it is unset. */
  static String env(String name) {
    String value = System.getenv("CHUNKSCOPE_TEST_" + name);
    if (value == null) {
      fail(
          "CHUNKSCOPE_TEST_"
              + name
              + " is unset: run the suite under scripts/client_fixture.py (clients/java/test.sh)");
    }
    return value;
  }

  /** Every CHUNKSCOPE_TEST_* variable, for `{{NAME}}` substitution in the vectors. */
  static Map<String, String> all() {
    return System.getenv();
  }

  static String address() {
    return env("ADDRESS");
  }

  static String token() {
    return env("TOKEN");
  }

  static String model() {
    return env("MODEL");
  }

  static String dictionary() {
    return env("DICTIONARY");
  }

  static String hookPoint() {
    return env("HOOK_POINT");
  }

  /** A client of the fixture's server with its admin token. */
  static ChunkscopeClient client() {
    return ChunkscopeClient.builder().address(address()).token(token()).build();
  }
}
