//! What the server says about itself and its types: GetSqlInfo, GetXdbcTypeInfo, and the
//! schema of GetPrimaryKeys (lakegate's tables have no primary keys).

use arrow_flight::sql::metadata::{
    SqlInfoData, SqlInfoDataBuilder, XdbcTypeInfo, XdbcTypeInfoData, XdbcTypeInfoDataBuilder,
};
use arrow_flight::sql::{
    Nullable, Searchable, SqlInfo, SqlNullOrdering, SqlSupportedCaseSensitivity, SqlSupportedTransaction, XdbcDataType,
};
use datafusion::arrow::datatypes::{DataType, Field, Schema};

use crate::Error;

pub(super) fn primary_keys_schema() -> Schema {
    Schema::new(vec![
        Field::new("catalog_name", DataType::Utf8, true),
        Field::new("db_schema_name", DataType::Utf8, true),
        Field::new("table_name", DataType::Utf8, false),
        Field::new("column_name", DataType::Utf8, false),
        Field::new("key_name", DataType::Utf8, true),
        Field::new("key_sequence", DataType::Int32, false),
    ])
}

pub(super) fn sql_info() -> crate::Result<SqlInfoData> {
    let mut info = SqlInfoDataBuilder::new();
    info.append(SqlInfo::FlightSqlServerName, "lakegate");
    info.append(SqlInfo::FlightSqlServerVersion, env!("CARGO_PKG_VERSION"));
    info.append(SqlInfo::FlightSqlServerArrowVersion, "59");
    info.append(SqlInfo::FlightSqlServerReadOnly, false);
    info.append(SqlInfo::FlightSqlServerSql, true);
    info.append(SqlInfo::FlightSqlServerSubstrait, false);
    info.append(SqlInfo::FlightSqlServerTransaction, SqlSupportedTransaction::None as i32);
    info.append(SqlInfo::FlightSqlServerCancel, true);
    info.append(SqlInfo::FlightSqlServerStatementTimeout, 0i32);
    info.append(SqlInfo::FlightSqlServerTransactionTimeout, 0i32);
    info.append(SqlInfo::SqlDdlCatalog, false);
    info.append(SqlInfo::SqlDdlSchema, true);
    info.append(SqlInfo::SqlDdlTable, true);
    info.append(SqlInfo::SqlIdentifierQuoteChar, "\"");
    // Unquoted names are case-insensitive: they are stored lower case.
    info.append(SqlInfo::SqlIdentifierCase, SqlSupportedCaseSensitivity::SqlCaseSensitivityCaseInsensitive as i32);
    info.append(SqlInfo::SqlQuotedIdentifierCase, SqlSupportedCaseSensitivity::SqlCaseSensitivityLowercase as i32);
    info.append(SqlInfo::SqlAllTablesAreSelectable, true);
    info.append(SqlInfo::SqlNullOrdering, SqlNullOrdering::SqlNullsSortedAtStart as i32);
    info.append(SqlInfo::SqlTransactionsSupported, false);
    info.append(SqlInfo::SqlSchemaTerm, "database");
    info.append(SqlInfo::SqlCatalogTerm, "catalog");
    info.append(SqlInfo::SqlProcedureTerm, "procedure");
    info.append(SqlInfo::SqlSearchStringEscape, "\\");
    info.append(SqlInfo::SqlExtraNameCharacters, "");
    info.append(SqlInfo::SqlMaxColumnNameLength, 0i64);
    info.build().map_err(|e| Error::Internal(e.to_string()))
}

pub(super) fn type_info() -> crate::Result<XdbcTypeInfoData> {
    let mut types = XdbcTypeInfoDataBuilder::new();
    let entry = |name: &str, data_type: XdbcDataType, size: Option<i32>, quoted: bool| XdbcTypeInfo {
        type_name: name.to_owned(),
        data_type,
        column_size: size,
        literal_prefix: quoted.then(|| "'".to_owned()),
        literal_suffix: quoted.then(|| "'".to_owned()),
        create_params: None,
        nullable: Nullable::NullabilityNullable,
        case_sensitive: quoted,
        searchable: Searchable::Full,
        unsigned_attribute: (!quoted).then_some(false),
        fixed_prec_scale: false,
        auto_increment: None,
        local_type_name: Some(name.to_owned()),
        minimum_scale: None,
        maximum_scale: None,
        sql_data_type: data_type,
        datetime_subcode: None,
        num_prec_radix: (!quoted).then_some(10),
        interval_precision: None,
    };
    for info in [
        entry("BOOLEAN", XdbcDataType::XdbcBit, Some(1), false),
        entry("TINYINT", XdbcDataType::XdbcTinyint, Some(3), false),
        entry("SMALLINT", XdbcDataType::XdbcSmallint, Some(5), false),
        entry("INTEGER", XdbcDataType::XdbcInteger, Some(10), false),
        entry("BIGINT", XdbcDataType::XdbcBigint, Some(19), false),
        entry("FLOAT", XdbcDataType::XdbcFloat, Some(7), false),
        entry("DOUBLE", XdbcDataType::XdbcDouble, Some(15), false),
        entry("DECIMAL", XdbcDataType::XdbcDecimal, Some(38), false),
        entry("VARCHAR", XdbcDataType::XdbcVarchar, Some(i32::MAX), true),
        entry("BINARY", XdbcDataType::XdbcBinary, Some(i32::MAX), true),
        entry("DATE", XdbcDataType::XdbcDate, Some(10), true),
        entry("TIME", XdbcDataType::XdbcTime, Some(15), true),
        entry("TIMESTAMP", XdbcDataType::XdbcTimestamp, Some(29), true),
    ] {
        types.append(info);
    }
    types.build().map_err(|e| Error::Internal(e.to_string()))
}
