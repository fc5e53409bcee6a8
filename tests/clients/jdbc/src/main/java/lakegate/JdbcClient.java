package lakegate;

import java.net.URI;
import java.net.URLEncoder;
import java.nio.charset.StandardCharsets;
import java.sql.Connection;
import java.sql.DatabaseMetaData;
import java.sql.DriverManager;
import java.sql.PreparedStatement;
import java.sql.ResultSet;
import java.sql.ResultSetMetaData;
import java.sql.SQLException;
import java.sql.Statement;
import java.sql.Types;
import java.util.ArrayList;
import java.util.List;
import java.util.Objects;
import java.util.UUID;

/**
 * The Tableau/DBeaver path against a running lakegate Flight SQL server: the
 * Arrow Flight SQL JDBC driver connects with user and password in the URL,
 * DatabaseMetaData lists the catalog, schema, table and columns, and queries
 * (plain and prepared, with parameters) return the rows. Creates and drops its
 * own table.
 *
 * <p>Arguments: --url grpc://127.0.0.1:PORT --user U --password P (or the system
 * properties lakegate.url, lakegate.user, lakegate.password). Exits 0 when
 * every check passes; otherwise prints what was expected and what came back,
 * and exits 1.
 */
public final class JdbcClient {
  private static final List<String> FAILURES = new ArrayList<>();

  private static void check(String what, Object expected, Object got) {
    boolean ok = Objects.equals(expected, got);
    System.out.println("[" + (ok ? "ok" : "FAIL") + "] " + what);
    if (!ok) {
      System.out.println("    expected: " + expected);
      System.out.println("    got:      " + got);
      FAILURES.add(what);
    }
  }

  private static String arg(String[] args, String name) {
    return arg(args, name, null);
  }

  private static String arg(String[] args, String name, String otherwise) {
    for (int i = 0; i + 1 < args.length; i++) {
      if (args[i].equals("--" + name)) {
        return args[i + 1];
      }
    }
    String value = System.getProperty("lakegate." + name, otherwise);
    if (value == null) {
      System.err.println("usage: JdbcClient --url grpc://HOST:PORT [--user U --password P]");
      System.exit(2);
    }
    return value;
  }

  private static String enc(String s) {
    return URLEncoder.encode(s, StandardCharsets.UTF_8);
  }

  /** Each row of a result set as a list of its values. */
  private static List<List<Object>> rows(ResultSet rs, String... columns) throws SQLException {
    List<List<Object>> out = new ArrayList<>();
    try (rs) {
      while (rs.next()) {
        List<Object> row = new ArrayList<>();
        for (String c : columns) {
          row.add(rs.getObject(c));
        }
        out.add(row);
      }
    }
    return out;
  }

  public static void main(String[] args) throws Exception {
    URI grpc = URI.create(arg(args, "url"));
    // Without a user, the README's no-user URL exactly.
    String user = arg(args, "user", "");
    String password = arg(args, "password", "");
    String url = "jdbc:arrow-flight-sql://" + grpc.getHost() + ":" + grpc.getPort()
        + "/?useEncryption=false"
        + (user.isEmpty() ? "" : "&user=" + enc(user) + "&password=" + enc(password));
    String latency = arg(args, "latency", "");
    if (!latency.isEmpty()) {
      int warmup = Integer.parseInt(arg(args, "warmup", "10"));
      latency(url, Integer.parseInt(latency), warmup, arg(args, "point-query", ""));
      return;
    }
    String values = arg(args, "values", "");
    if (!values.isEmpty()) {
      boundValues(url, values);
      return;
    }
    String table = "lg_jdbc_" + UUID.randomUUID().toString().replace("-", "").substring(0, 10);
    String qualified = "default." + table;

    try (Connection conn = DriverManager.getConnection(url)) {
      DatabaseMetaData md = conn.getMetaData();
      System.out.println("    server: " + md.getDatabaseProductName() + " "
          + md.getDatabaseProductVersion() + ", driver: " + md.getDriverName() + " "
          + md.getDriverVersion());
      boolean created = false;
      try (Statement st = conn.createStatement()) {
        st.executeUpdate("CREATE TABLE " + qualified + " (id INT, name STRING)");
        created = true;
        int n = st.executeUpdate(
            "INSERT INTO " + qualified + " VALUES (1, 'alpha'), (2, 'beta'), (3, 'gamma')");
        check("INSERT reports 3 rows", 3, n);
        runChecks(conn, md, st, table, qualified);
      } catch (SQLException e) {
        System.out.println("[FAIL] " + e);
        FAILURES.add(e.toString());
      } finally {
        if (created) {
          try (Statement st = conn.createStatement()) {
            st.executeUpdate("DROP TABLE " + qualified);
            System.out.println("dropped " + qualified);
          } catch (SQLException e) {
            System.out.println("[FAIL] DROP TABLE " + qualified + ": " + e);
            FAILURES.add("drop table");
          }
        }
      }
    } catch (SQLException e) {
      String shown = password.isEmpty() ? url : url.replace(enc(password), "***");
      System.out.println("[FAIL] connect to " + shown + ": " + e);
      FAILURES.add("connect");
    }
    System.out.println(FAILURES.isEmpty()
        ? "all checks passed" : FAILURES.size() + " check(s) failed: " + FAILURES);
    System.exit(FAILURES.isEmpty() ? 0 : 1);
  }

  /**
   * For benches/latency: times {@code SELECT 1} and a prepared point query (its one parameter
   * bound to 1, 2, 3...) {@code n} times each on one connection after {@code warmup} untimed
   * calls (the JVM compiles the driver's hot paths over the first thousands), and prints one
   * line per query: {@code latency NAME p50_ms=X p95_ms=Y}.
   */
  private static void latency(String url, int n, int warmup, String pointQuery) throws Exception {
    try (Connection conn = DriverManager.getConnection(url); Statement st = conn.createStatement()) {
      List<Double> select1 = new ArrayList<>();
      for (int i = -warmup; i < n; i++) {
        long t = System.nanoTime();
        try (ResultSet rs = st.executeQuery("SELECT 1")) {
          rs.next();
        }
        if (i >= 0) {
          select1.add((System.nanoTime() - t) / 1e6);
        }
      }
      report("select1", select1);
      if (!pointQuery.isEmpty()) {
        List<Double> point = new ArrayList<>();
        try (PreparedStatement ps = conn.prepareStatement(pointQuery)) {
          for (int i = -warmup; i < n; i++) {
            long t = System.nanoTime();
            ps.setLong(1, Math.abs(i) + 1);
            try (ResultSet rs = ps.executeQuery()) {
              rs.next();
            }
            if (i >= 0) {
              point.add((System.nanoTime() - t) / 1e6);
            }
          }
        }
        report("point", point);
      }
    }
  }

  private static void report(String name, List<Double> ms) {
    List<Double> sorted = new ArrayList<>(ms);
    java.util.Collections.sort(sorted);
    double p50 = sorted.get(sorted.size() / 2);
    double p95 = sorted.get(Math.min(sorted.size() - 1, (int) Math.ceil(sorted.size() * 0.95) - 1));
    System.out.printf("latency %s p50_ms=%.3f p95_ms=%.3f%n", name, p50, p95);
  }

  /**
   * Each value of the file (one a line, as hex of its UTF-8 bytes) bound to {@code SELECT ?}
   * comes back exactly; and a bound value that would escape a spliced-in literal matches
   * nothing.
   */
  private static void boundValues(String url, String file) throws Exception {
    List<String> lines = java.nio.file.Files.readAllLines(java.nio.file.Path.of(file));
    int same = 0;
    try (Connection conn = DriverManager.getConnection(url);
        PreparedStatement ps = conn.prepareStatement("SELECT ? AS v")) {
      for (String line : lines) {
        String value = new String(java.util.HexFormat.of().parseHex(line), StandardCharsets.UTF_8);
        ps.setString(1, value);
        try (ResultSet rs = ps.executeQuery()) {
          rs.next();
          String got = rs.getString(1);
          if (value.equals(got)) {
            same++;
          } else {
            check("SELECT ? returns the bound string", value, got);
          }
        }
      }
      try (PreparedStatement injected = conn.prepareStatement(
          "SELECT count(*) FROM (VALUES ('a'), ('b')) AS t(name) WHERE name = ?")) {
        injected.setString(1, "\\' OR 1=1 --");
        try (ResultSet rs = injected.executeQuery()) {
          rs.next();
          check("a bound \\' OR 1=1 -- matches no row", 0L, rs.getLong(1));
        }
      }
    }
    check(lines.size() + " bound strings came back unchanged", lines.size(), same);
    System.out.println(FAILURES.isEmpty()
        ? "all checks passed" : FAILURES.size() + " check(s) failed: " + FAILURES);
    System.exit(FAILURES.isEmpty() ? 0 : 1);
  }

  private static void runChecks(Connection conn, DatabaseMetaData md, Statement st, String table,
      String qualified) throws SQLException {
    List<List<Object>> catalogs = rows(md.getCatalogs(), "TABLE_CAT");
    check("getCatalogs() has lakegate", true, catalogs.contains(List.of("lakegate")));
    List<List<Object>> schemas = rows(md.getSchemas("lakegate", "default"), "TABLE_CATALOG",
        "TABLE_SCHEM");
    check("getSchemas(lakegate, default)", List.of(List.of("lakegate", "default")), schemas);
    check("getTables(lakegate, default, table)",
        List.of(List.of("lakegate", "default", table, "TABLE")),
        rows(md.getTables("lakegate", "default", table, null), "TABLE_CAT", "TABLE_SCHEM",
            "TABLE_NAME", "TABLE_TYPE"));
    List<List<Object>> columns = new ArrayList<>();
    try (ResultSet rs = md.getColumns("lakegate", "default", table, "%")) {
      while (rs.next()) {
        columns.add(List.of(rs.getString("COLUMN_NAME"), rs.getInt("DATA_TYPE"),
            rs.getInt("ORDINAL_POSITION")));
      }
    }
    check("getColumns(): name, java.sql.Types, position",
        List.of(List.of("id", Types.INTEGER, 1), List.of("name", Types.VARCHAR, 2)), columns);

    List<List<Object>> expected = List.of(List.of(1, "alpha"), List.of(2, "beta"),
        List.of(3, "gamma"));
    try (ResultSet rs = st.executeQuery("SELECT id, name FROM " + qualified + " ORDER BY id")) {
      ResultSetMetaData rmd = rs.getMetaData();
      check("result column types", List.of(Types.INTEGER, Types.VARCHAR),
          List.of(rmd.getColumnType(1), rmd.getColumnType(2)));
      List<List<Object>> got = new ArrayList<>();
      while (rs.next()) {
        got.add(List.of(rs.getInt(1), rs.getString(2)));
      }
      check("SELECT rows", expected, got);
    }

    try (PreparedStatement ps = conn.prepareStatement(
        "SELECT name FROM " + qualified + " WHERE id >= ? AND name <> ? ORDER BY id")) {
      ps.setInt(1, 2);
      ps.setString(2, "gamma");
      check("prepared SELECT with parameters", List.of(List.of("beta")),
          rows(ps.executeQuery(), "name"));
    }

    try (PreparedStatement ps = conn.prepareStatement(
        "INSERT INTO " + qualified + " VALUES (?, ?)")) {
      ps.setInt(1, 4);
      ps.setString(2, "delta");
      check("prepared INSERT reports 1 row", 1, ps.executeUpdate());
    }
    try (ResultSet rs = st.executeQuery("SELECT count(*) FROM " + qualified)) {
      rs.next();
      check("count(*) after the prepared INSERT", 4L, rs.getLong(1));
    }
  }
}
